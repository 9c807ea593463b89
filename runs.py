"""The run folder: what train.py writes and evaluate.py / hyper.py read.

    models/<arch>_<task>_<YYYYmmdd_HHMMSS>_<budget>/
        config.json        architecture + model config, data spec, training settings, the codec
        model.safetensors  weights (loaded without unpickling anything)
        optimizer.pt       optimizer state for --resume (loaded with weights_only=True)
        metrics.json       test exact match, steps, samples, times, seed, versions, machine load
        curve.csv          the training curve
        training.png       the curve drawn: loss, validation exact match and learning rate
        tensorboard/       (with --tensorboard) the run's TensorBoard event files
        adapters.safetensors   (LoRA runs) the adapters, already folded into model.safetensors

A folder is written under a hidden temporary name and renamed into place in one step, so an
interrupted write leaves no half-written run; nothing existing is ever overwritten.
"""
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

import archs
import dataset as D
from codec import Codec
from errors import DataError, OnnxError, RunError, UnknownArch, UserError
from files import tmp_dir, write_json


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "optuna", "sqlalchemy", "pandas", "rich", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def new_run_dir(root, arch, task, budget_label) -> str:
    name = f"{arch}_{task}_{time.strftime('%Y%m%d_%H%M%S')}_{budget_label}"
    path, k = os.path.join(root, name), 2
    while os.path.exists(path):
        path, k = os.path.join(root, f"{name}_{k}"), k + 1
    return path


def _storage_key(t: torch.Tensor):
    return (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


def weights_of(model) -> dict:
    """The tensors to save: one contiguous CPU copy of each, tied weights (the head sharing the
    embedding) once, under the name the model lists first. A copy of its own for every tensor
    matters on CUDA: cuDNN keeps an RNN's weights as views into one flat buffer, which safetensors
    refuses to save ("None is covering the entire storage")."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        key = _storage_key(t)
        if key not in seen:
            seen.add(key)
            out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


def _corrupt(path, e) -> RunError:
    return RunError(f"{path} is corrupt ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'})")


def check_weights_file(path, shapes: dict):
    """Compare the tensors a model.safetensors file declares in its header with the shapes the
    run's config.json makes (archs.shapes), before any weight is allocated: RunError naming the
    first tensor of the file the model lacks or has in another shape. Tensors the file lacks are
    load_weights's to find: tied weights are saved once, under either name."""
    try:
        with safe_open(path, framework="pt") as f:
            declared = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:  # safetensors raises several types for a damaged file
        raise _corrupt(path, e) from None
    unexpected = sorted(set(declared) - set(shapes))
    if unexpected:
        raise RunError(f"{path} does not match its config.json (unexpected {unexpected[:2]})")
    for name, shape in declared.items():
        if shape != shapes[name]:
            raise RunError(f"{path} does not match its config.json: {name} has shape {shape} "
                           f"in the file and {shapes[name]} in the model")


def load_weights(model, path):
    """Copy the tensors of a model.safetensors file into model's own tensors (so a cuDNN model
    keeps its flat weight buffer); RunError naming the first tensor that is missing, unexpected,
    of another shape, or not finite (NaN or infinity: a model that can only answer nonsense)."""
    try:
        state = load_file(path, device="cpu")
    except Exception as e:  # safetensors raises several types for a damaged file
        raise _corrupt(path, e) from None
    own = model.state_dict()
    groups = {}  # names of one tensor (tied weights): the file needs any one of them
    for name, t in own.items():
        groups.setdefault(_storage_key(t), []).append(name)
    missing = sorted(names[0] for names in groups.values() if not set(names) & set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise RunError(f"{path} does not match its config.json (missing {missing[:2]}, unexpected {unexpected[:2]})")
    for name in (n for n in own if n in state):
        if own[name].shape != state[name].shape:
            raise RunError(f"{path} does not match its config.json: {name} has shape {tuple(state[name].shape)} "
                           f"in the file and {tuple(own[name].shape)} in the model")
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise RunError(f"{path} holds weights that are not finite (NaN or infinity) in {name}")
    with torch.no_grad():
        for name, t in state.items():
            own[name].copy_(t)


def save_run(path, model, optimizer, config: dict, metrics: dict, curve_csv: str, adapters: dict | None = None,
             files: dict | None = None):
    """Write a complete run folder in one atomic rename, at `path` or, if that name was taken
    meanwhile, at `path_2`, `path_3`, ...; returns the folder written. Never replaces a folder.
    adapters: LoRA tensors to keep beside the (merged) weights, as adapters.safetensors; files:
    other files of the run, name -> bytes (training.png)."""
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tmp_dir(parent)
    try:
        with open(os.path.join(tmp, "model.safetensors"), "wb") as f:  # Python's I/O: a full disk is an OSError
            f.write(safetensors_bytes(weights_of(model)))
        if adapters:
            with open(os.path.join(tmp, "adapters.safetensors"), "wb") as f:
                f.write(safetensors_bytes(adapters))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
        write_json(os.path.join(tmp, "config.json"), config)
        write_json(os.path.join(tmp, "metrics.json"), metrics)
        with open(os.path.join(tmp, "curve.csv"), "w", encoding="utf-8") as f:
            f.write(curve_csv)
        for name, data in (files or {}).items():
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
        final, k = path, 2
        while True:  # another process may have taken the name since new_run_dir chose it
            try:
                os.rename(tmp, final)  # fails rather than replace an existing folder
                return final
            except OSError:
                if not os.path.exists(final) or k > 1000:
                    raise
                final, k = f"{path}_{k}", k + 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rescue_dir() -> str:
    """A new folder of this user's own for a run that could not be saved where asked: made by
    mkdtemp in the temporary directory (a fresh name, mode 0700, so no other user can have made
    it first or be in the way), named harness-rescue-<uid>-<random>."""
    return tempfile.mkdtemp(prefix=f"harness-rescue-{os.getuid()}-")


def save_run_or_rescue(path, model, optimizer, config, metrics, curve_csv, ask=None, adapters=None,
                       files=None) -> tuple[str, str | None]:
    """save_run at path; when that fails (disk full, no permission), the same run in a rescue
    folder (rescue_dir), then in each folder ask(problem) names until one works or it answers
    nothing. Returns (folder written, None) or (folder written elsewhere, the one-line problem
    with path). RunError when nothing could be written: only then is the trained model lost."""
    try:
        return save_run(path, model, optimizer, config, metrics, curve_csv, adapters, files), None
    except OSError as e:
        problem = f"could not write {path} ({e.strerror or e})"
    try:
        dest = os.path.join(rescue_dir(), os.path.basename(path))
    except OSError as e:
        problem += f", nor a rescue folder in {tempfile.gettempdir()} ({e.strerror or e})"
        dest = None
    while True:
        try:
            if dest:
                return save_run(dest, model, optimizer, config, metrics, curve_csv, adapters, files), problem
        except OSError as e:
            problem += f", nor {dest} ({e.strerror or e})"
        answer = ask(problem) if ask else None
        if not answer:
            raise RunError(f"{problem}: the trained model could not be saved anywhere")
        dest = os.path.join(os.path.expanduser(answer), os.path.basename(path))


def read_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path} is missing: not a complete run folder") from None
    except IsADirectoryError:
        raise RunError(f"{path} is a folder, not a file: not a complete run folder") from None
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, a number of over 4300 digits, nesting too deep
        raise RunError(f"{path} is corrupt ({str(e).splitlines()[0] if str(e) else 'nested too deep'})") from None
    except OSError as e:
        raise RunError(f"cannot read {path} ({e.strerror or e})") from None
    if not isinstance(d, dict):
        raise RunError(f"{path} is corrupt (not a JSON object)")
    return d


# ----------------------------------------------------------------------------- what a run folder may hold

Finite = Annotated[float, Field(allow_inf_nan=False)]
Whole = Annotated[StrictInt, Field(ge=0, le=10**15)]
Name = Annotated[StrictStr, Field(max_length=200)]
Setting = StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | Annotated[StrictStr, Field(max_length=1000)] \
    | Annotated[list[StrictInt], Field(max_length=1000)] | None
Sha256 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields a later version adds: kept, not read


class DataRecord(BaseModel):
    """config.json's data: a DataSpec's fields, typed (DataSpec checks their ranges)."""
    model_config = ConfigDict(extra="forbid")
    task: Name
    options: dict[Name, Setting] | None = None
    train_size: StrictInt = D.DEFAULT_SIZES["train"]
    val_size: StrictInt = D.DEFAULT_SIZES["val"]
    test_size: StrictInt = D.DEFAULT_SIZES["test"]
    ood_size: StrictInt = D.DEFAULT_SIZES["ood"]
    seed: StrictInt = 0


class TrainRecord(_Record):
    """config.json's train: what --resume takes again is typed (settings.Train checks the ranges)."""
    budget: Name | None = None
    lr: Finite | None = None
    batch_size: StrictInt | None = None
    warmup: Finite | None = None
    weight_decay: Finite | None = None
    grad_clip: Finite | None = None
    precision: Name | None = None


class ConfigRecord(_Record):
    """config.json. The model settings are typed here and checked by the architecture's Config
    (and archs.shapes: at most archs.MAX_PARAMS parameters); data_dir records where the run was
    trained and is never followed (a run is scored on the data folder of the script that loads
    it, checked against data_sha256)."""
    arch: Name
    model: dict[Name, Setting]
    data: DataRecord
    data_dir: Annotated[StrictStr, Field(max_length=4096)] | None = None
    data_sha256: dict[Literal["train", "val", "test", "ood"], Sha256] | None = None
    train: TrainRecord = TrainRecord()


class MetricsRecord(_Record):
    """metrics.json: the counts and scores other scripts read (--resume adds to the totals)."""
    test_em: Annotated[float, Field(ge=0, le=1)] | None = None
    val_em: Annotated[float, Field(ge=0, le=1)] | None = None
    steps: Whole | None = None
    samples: Whole | None = None
    total_steps: Whole | None = None
    total_samples: Whole | None = None
    params: Whole | None = None
    wall_time: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    created: Name | None = None


def checked(record: type[BaseModel], d: dict, where: str) -> dict:
    """d if it has the shape record declares; RunError naming the first field that does not."""
    try:
        record.model_validate(d)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "its top level"
        raise RunError(f"{where} is corrupt ({field}: {err['msg']})") from None
    return d


def read_run_files(path) -> tuple[dict, dict]:
    """config.json and metrics.json of a run folder, each checked against its record."""
    if not os.path.isdir(path):
        raise RunError(f"no run folder at {path}")
    config = checked(ConfigRecord, read_json(os.path.join(path, "config.json")), f"{path}/config.json")
    metrics = checked(MetricsRecord, read_json(os.path.join(path, "metrics.json")), f"{path}/metrics.json")
    return config, metrics


DATA_DIR = "data"  # the project's data folder: where every script finds a run's data


def _but_ood(spec: D.DataSpec) -> tuple:
    """What fixes a spec's train, validation and test splits: all of it but the ood_* options."""
    options = {k: v for k, v in spec.full_options().items() if not k.startswith("ood_")}
    return spec.task, options, spec.train_size, spec.val_size, spec.test_size, spec.seed


@dataclass
class Run:
    """A saved run, loaded: the model (eval mode, on its device), the codec it was trained with,
    its data spec and task (with the options it was trained on), config.json and metrics.json."""
    path: str
    model: torch.nn.Module
    codec: Codec
    spec: D.DataSpec
    config: dict
    metrics: dict
    data_dir: str = DATA_DIR

    @property
    def task(self):
        return self.spec.task_instance

    def data_folder(self, spec: D.DataSpec | None = None) -> str:
        """The folder of the run's data (made if missing) under data_dir, checked against the
        hashes the run recorded; or of spec's: another OOD range of the run's data (its other
        splits are checked) or other data altogether (a parent's task: nothing recorded to check)."""
        folder = D.prepare(spec or self.spec, self.data_dir)
        if spec is None:
            check_recorded(self.config, folder, self.path)
        elif _but_ood(spec) == _but_ood(self.spec):
            check_recorded(self.config, folder, self.path, skip=("ood",))
        return folder

    def split(self, name: str, spec: D.DataSpec | None = None) -> list:
        """The examples of one split of the run's data, or of spec's (see data_folder)."""
        return D.load_split(self.data_folder(spec), name)


def check_recorded(config: dict, folder: str, path: str, skip=()):
    """The data folder holds the data the run was trained on: each split's sha256 in the folder's
    meta.json (which load_split checks the file against) is the one the run's config.json
    recorded. DataError naming both when not (the folder was rewritten, hashes and all)."""
    recorded = config.get("data_sha256") or {}
    found = D.read_meta(folder)["sha256"]
    for split, sha in recorded.items():
        if split not in skip and found.get(split) != sha:
            raise DataError(f"{folder}/{split}.jsonl is not the data {path} was trained on (its config.json "
                            f"recorded sha256 {sha[:12]}..., the folder has {str(found.get(split))[:12]}...): "
                            f"delete {folder} to regenerate it")


def load_run(path, device="cpu", runtime="torch", data_dir=DATA_DIR) -> Run:
    """The run in a folder; RunError with a one-line reason if it is unusable. Runs saved before
    codecs existed (a `vocab` list in config.json) load with that list as their codec. runtime
    "onnx" or "int8": the model is its export (export.py) run by onnxruntime (onnxrun.py). Its data
    is found under data_dir (never where config.json says it was: see ConfigRecord)."""
    path = str(path)
    config, metrics = read_run_files(path)
    where = f"{path}/config.json"
    try:
        arch = archs.resolve(config["arch"])
    except UnknownArch:
        raise RunError(f"{where} names architecture {config['arch']!r}, which this version does not have "
                       f"({', '.join(archs.ARCHS)})") from None
    try:
        spec = D.DataSpec(**config["data"])
        spec.task_instance  # noqa: B018 -- a task or options this version lacks: one line now
    except (DataError, TypeError) as e:
        raise RunError(f"{where}: {e}") from None
    try:
        codec = Codec.of(config)
    except (ValueError, TypeError, AttributeError) as e:
        raise RunError(f"{where} is corrupt (its codec: {e})") from None
    settings = config["model"]
    if settings.get("vocab_size", len(codec)) != len(codec):
        raise RunError(f"{where} is corrupt (model vocab_size {settings.get('vocab_size')} but {len(codec)} codec tokens)")
    settings = {**settings, "vocab_size": len(codec)}
    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        raise RunError(f"{weights} is missing: not a complete run folder")
    try:
        check_weights_file(weights, archs.shapes(arch, settings))  # before a weight is allocated
        model, _ = archs.build(arch, settings)
    except UserError as e:
        raise RunError(f"{where} is corrupt ({str(e).splitlines()[0]})") from None
    load_weights(model, weights)
    if runtime != "torch":
        import onnxrun
        if runtime not in onnxrun.RUNTIMES:
            raise RunError(f"unknown runtime {runtime!r}; expected {', '.join(onnxrun.RUNTIMES)}")
        try:
            model = onnxrun.load(path, runtime, model.layout, vars(model.cfg))
        except OnnxError as e:
            raise RunError(str(e)) from None
        return Run(path, model, codec, spec, config, metrics, data_dir)
    return Run(path, model.to(device).eval(), codec, spec, config, metrics, data_dir)


def load_optimizer_state(path):
    f = os.path.join(path, "optimizer.pt")
    if not os.path.isfile(f):
        return None
    try:
        return torch.load(f, weights_only=True, map_location="cpu")
    except Exception as e:
        raise RunError(f"{f} is corrupt ({type(e).__name__})") from None


def _got(d, *keys):
    """d[keys[0]][keys[1]]..., or None where a level is not an object."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def list_runs(root="models") -> list[dict]:
    """Run folders under root (newest first) with their headline numbers as their JSON files give
    them, unchecked (load_run checks them; evaluate.py --all lists the runs that fail apart);
    skips folders whose config.json or metrics.json is missing or not JSON."""
    out = []
    if not os.path.isdir(root):
        return out
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        try:
            config = read_json(os.path.join(path, "config.json"))
            metrics = read_json(os.path.join(path, "metrics.json"))
        except RunError:
            continue
        out.append({"run": path, "arch": _got(config, "arch"), "task": _got(config, "data", "task"),
                    "budget": _got(config, "train", "budget"), "created": str(_got(metrics, "created") or ""),
                    "test_em": _got(metrics, "test_em"), "steps": _got(metrics, "steps"),
                    "params": _got(metrics, "params"), "wall_time": _got(metrics, "wall_time")})
    return sorted(out, key=lambda r: (r["created"], r["run"]), reverse=True)
