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

import torch
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


def load_weights(model, path):
    """Copy the tensors of a model.safetensors file into model's own tensors (so a cuDNN model
    keeps its flat weight buffer); RunError naming the first tensor that is missing, unexpected
    or of another shape."""
    try:
        state = load_file(path, device="cpu")
    except Exception as e:  # safetensors raises several types for a damaged file
        raise RunError(f"{path} is corrupt ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
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


RESCUE_DIR = os.path.join(tempfile.gettempdir(), "harness-rescue")


def save_run_or_rescue(path, model, optimizer, config, metrics, curve_csv, ask=None, adapters=None,
                       files=None) -> tuple[str, str | None]:
    """save_run at path; when that fails (disk full, no permission), the same run under
    RESCUE_DIR, then in each folder ask(problem) names until one works or it answers nothing.
    Returns (folder written, None) or (folder written elsewhere, the one-line problem with path).
    RunError when nothing could be written: only then is the trained model lost."""
    try:
        return save_run(path, model, optimizer, config, metrics, curve_csv, adapters, files), None
    except OSError as e:
        problem = f"could not write {path} ({e.strerror or e})"
    dest = os.path.join(RESCUE_DIR, os.path.basename(path))
    while True:
        try:
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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is corrupt ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise RunError(f"{path} is corrupt (not a JSON object)")
    return d


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

    @property
    def task(self):
        return self.spec.task_instance

    @property
    def data_dir(self) -> str:
        return self.config.get("data_dir", "data")

    def split(self, name: str, spec: D.DataSpec | None = None) -> list:
        """The examples of one split of the run's data (made if missing), or of spec's (another OOD range)."""
        return D.load_split(D.prepare(spec or self.spec, self.data_dir), name)


def load_run(path, device="cpu", runtime="torch") -> Run:
    """The run in a folder; RunError with a one-line reason if it is unusable. Runs saved before
    codecs existed (a `vocab` list in config.json) load with that list as their codec. runtime
    "onnx" or "int8": the model is its export (export.py) run by onnxruntime (onnxrun.py)."""
    path = str(path)
    if not os.path.isdir(path):
        raise RunError(f"no run folder at {path}")
    config = read_json(os.path.join(path, "config.json"))
    metrics = read_json(os.path.join(path, "metrics.json"))
    where = f"{path}/config.json"
    if not isinstance(config.get("arch"), str):
        raise RunError(f"{where} is corrupt (arch is {config.get('arch')!r}, not a name)")
    try:
        arch = archs.resolve(config["arch"])
    except UnknownArch:
        raise RunError(f"{where} names architecture {config['arch']!r}, which this version does not have "
                       f"({', '.join(archs.ARCHS)})") from None
    data = config.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("task"), str):
        raise RunError(f"{where} is corrupt (no data.task)")
    try:
        spec = D.DataSpec(**data)
        spec.task_instance  # noqa: B018 -- a task or options this version lacks: one line now
    except (DataError, TypeError) as e:
        raise RunError(f"{where}: {e}") from None
    try:
        codec = Codec.of(config)
    except (ValueError, TypeError, AttributeError) as e:
        raise RunError(f"{where} is corrupt (its codec: {e})") from None
    settings = config.get("model")
    if not isinstance(settings, dict):
        raise RunError(f"{where} is corrupt (model is {settings!r}, not an object)")
    if settings.get("vocab_size", len(codec)) != len(codec):
        raise RunError(f"{where} is corrupt (model vocab_size {settings.get('vocab_size')} but {len(codec)} codec tokens)")
    try:
        model, _ = archs.build(arch, {**settings, "vocab_size": len(codec)})
    except UserError as e:
        raise RunError(f"{where} is corrupt ({str(e).splitlines()[0]})") from None
    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        raise RunError(f"{weights} is missing: not a complete run folder")
    load_weights(model, weights)
    if runtime != "torch":
        import onnxrun
        if runtime not in onnxrun.RUNTIMES:
            raise RunError(f"unknown runtime {runtime!r}; expected {', '.join(onnxrun.RUNTIMES)}")
        try:
            model = onnxrun.load(path, runtime, model.layout, vars(model.cfg))
        except OnnxError as e:
            raise RunError(str(e)) from None
        return Run(path, model, codec, spec, config, metrics)
    return Run(path, model.to(device).eval(), codec, spec, config, metrics)


def load_optimizer_state(path):
    f = os.path.join(path, "optimizer.pt")
    if not os.path.isfile(f):
        return None
    try:
        return torch.load(f, weights_only=True, map_location="cpu")
    except Exception as e:
        raise RunError(f"{f} is corrupt ({type(e).__name__})") from None


def list_runs(root="models") -> list[dict]:
    """Complete runs under root (newest first) with their headline numbers; skips damaged folders."""
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
        out.append({"run": path, "arch": config.get("arch"), "task": config.get("data", {}).get("task"),
                    "budget": config.get("train", {}).get("budget"), "created": metrics.get("created", ""),
                    "test_em": metrics.get("test_em"), "steps": metrics.get("steps"),
                    "params": metrics.get("params"), "wall_time": metrics.get("wall_time")})
    return sorted(out, key=lambda r: (r["created"], r["run"]), reverse=True)
