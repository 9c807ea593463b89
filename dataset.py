"""Data on disk: the train / validation / test / OOD splits of a task, frozen and verified.

An example is (input, target, meta): plain strings plus a dict used for breakdowns (tasks/ makes
them; codec.py turns them into token ids).

Splits. Each possible input belongs to exactly one of train / validation / test, decided by a
fixed hash of the input string (a tenth test, a twentieth validation, the rest train). So the test and
validation sets never overlap train by input, even on small problem spaces, and every class of
problem keeps most of its instances for training. The out-of-distribution split (longer bracket
inputs, one more arithmetic digit) is drawn from the test share as well. Validation, test and
OOD inputs are unique within their split. A data folder holds the splits as JSON Lines and a
meta.json with the task's codec and each file's sha256, so the frozen test set is verified on
every load. A folder's name hashes the spec and the labels the task's code writes today (a
fingerprint of a few seeded problems), so after a change to how answers are written an older
folder is never reused.

    python dataset.py --task bracket          # writes data/<task>-<hash>/ and prints a summary
"""
import os
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import hashlib
import json
import shutil
import typing
import zlib
from dataclasses import asdict, dataclass
from functools import cached_property

import torch

from codec import Batch, Codec, UnknownSymbols
from errors import DataError, UserError
from files import check_writable, clean_stale, tmp_dir
from tasks import TASKS, Example, codec_of, make_task, options_of

# ----------------------------------------------------------------------------- splits on disk

SPLITS = ("train", "val", "test", "ood")
DEFAULT_SIZES = {"train": 100_000, "val": 1000, "test": 2000, "ood": 2000}
MAX_SIZES = {"train": 10_000_000, "val": 1_000_000, "test": 1_000_000, "ood": 1_000_000}  # a few GB of JSON Lines
MAX_SEED = 2**31 - 1


def split_of(text: str) -> str:
    """The split an input belongs to, fixed for all time by a hash of the input."""
    bucket = zlib.crc32(text.encode()) % 100
    return "test" if bucket < 10 else "val" if bucket < 15 else "train"


CURVE_SEED = 2**40  # curve sets draw from seeds of their own, apart from the splits
STALE_DRAWS = 100_000  # draws in a row that find no new input: the split's share of the problem space is exhausted


def _draw(task, split: str, n: int, seed: int, at: int | None = None) -> list[Example]:
    """n examples of split, drawn from a seed of their own. Validation, test and OOD inputs are
    distinct: when the task's problem space holds fewer of them, the split takes what exists (and
    says so in one line); only an empty split is an error. With `at`, the problems of a curve
    set: from the test share, with the axis value at (task.sample_at), possibly none (a value at
    which the task has no problem: sample_at draws nothing)."""
    gen = torch.Generator().manual_seed(seed * 1000 + SPLITS.index(split) if at is None else CURVE_SEED + seed * 10_000 + at)
    home = "test" if split == "ood" or at is not None else split
    unique = split != "train"
    out, seen, stale = [], set(), 0
    while len(out) < n and stale < STALE_DRAWS:
        drawn = task.sample(gen, 1024, ood=split == "ood") if at is None else task.sample_at(gen, 1024, at)
        if not drawn:
            break
        for ex in drawn:
            stale += 1
            if split_of(ex.input) != home or (unique and ex.input in seen):
                continue
            seen.add(ex.input)
            out.append(ex)
            stale = 0
            if len(out) == n:
                break
    if at is not None:
        return out
    if not out:
        raise DataError(f"the task's problem space has no {split} inputs: choose a larger task")
    if len(out) < n:
        print(f"note: the task's problem space holds {len(out)} distinct {split} inputs, fewer than the {n} asked; "
              f"the {split} split takes them all", file=sys.stderr)
    return out


@dataclass
class DataSpec:
    """Everything that fixes a data folder: the task, its options, the sizes and the data seed.
    A run carries its spec (runs.Run.spec); the task it names is made once (task_instance)."""
    task: str = "bracket"
    options: dict | None = None
    train_size: int = DEFAULT_SIZES["train"]
    val_size: int = DEFAULT_SIZES["val"]
    test_size: int = DEFAULT_SIZES["test"]
    ood_size: int = DEFAULT_SIZES["ood"]
    seed: int = 0

    def __post_init__(self):
        for split, n in self.sizes().items():
            if type(n) is not int or not 1 <= n <= MAX_SIZES[split]:
                raise DataError(f"the {split} split holds from 1 to {MAX_SIZES[split]:,} examples, got {n!r}")
        if type(self.seed) is not int or not 0 <= self.seed <= MAX_SEED:
            raise DataError(f"the data seed is a whole number from 0 to {MAX_SEED}, got {self.seed!r}")

    @cached_property
    def task_instance(self):
        """The Task these options make (DataError for options it refuses); made once."""
        return make_task(self.task, self.options)

    def sizes(self) -> dict:
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size, "ood": self.ood_size}

    def full_options(self) -> dict:
        return asdict(self.task_instance.cfg)

    def codec(self) -> Codec:
        return codec_of(self.task_instance)

    def folder(self, root="data") -> str:
        key = json.dumps({"task": self.task, "options": self.full_options(), "sizes": self.sizes(), "seed": self.seed,
                          "codec": self.codec().tokens, "labels": labels_fingerprint(self.task_instance)},
                         sort_keys=True, ensure_ascii=False)
        return os.path.join(root, f"{self.task}-{hashlib.sha256(key.encode()).hexdigest()[:10]}")


def labels_fingerprint(task, n=32) -> str:
    """A hash of the first problems the task's code draws from a fixed seed, in and out of
    distribution, with their targets and metadata: it changes when the way examples are written does."""
    gen = torch.Generator().manual_seed(0)
    examples = task.sample(gen, n) + task.sample(gen, n, ood=True)
    text = json.dumps([asdict(e) for e in examples], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare(spec: DataSpec, root="data") -> str:
    """Create the spec's data folder if it is missing (atomically) and return its path."""
    folder = spec.folder(root)
    clean_stale(root)  # what killed processes left half-made
    if os.path.isdir(folder):
        return folder
    _not_a_file(folder)
    task = spec.task_instance
    check_writable(root, "--data-dir")
    tmp = tmp_dir(root)
    try:
        hashes = {split: _write_split(tmp, split, _draw(task, split, n, spec.seed)) for split, n in spec.sizes().items()}
        meta = {"task": spec.task, "options": spec.full_options(), "sizes": spec.sizes(), "seed": spec.seed,
                "sha256": hashes, "codec": spec.codec().to_json(), "labels": labels_fingerprint(task)}
        _publish(tmp, folder, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _not_a_file(folder):
    if os.path.lexists(folder):
        raise DataError(f"{folder} is in the way of a data folder (a file, or a link to none): delete it to regenerate it")


def _write_split(folder, split, examples) -> str:
    """Write examples as folder/<split>.jsonl and return the file's sha256."""
    path = os.path.join(folder, f"{split}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")
    return _sha256(path)


def _publish(tmp, folder, meta):
    """Write meta.json into the finished tmp folder and rename it to folder (atomic)."""
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process made it first: theirs is as good as ours
        if not os.path.isdir(folder):
            raise


# ----------------------------------------------------------------------------- accuracy curves

CURVE_SIZE = 100  # problems per value of a curve (fewer where the problem space's test share holds fewer)


def prepare_curve(spec: DataSpec, per_value: int = CURVE_SIZE, root="data", values: list[int] | None = None) -> str:
    """The frozen curve sets of spec's task: for every value of its axis (tasks.common.Axis, 1 to
    4 x the training maximum; or the values given, as the Chomsky-hierarchy protocol scores
    lengths 41..500), up to per_value distinct problems with exactly that value, from the test
    share of the hash split (so none is a training input), each value a file `at-<v>.jsonl`
    verified by sha256 like a split. Made once per task, options, values, size and data seed,
    atomically."""
    task = spec.task_instance
    values = sorted(values) if values else task.axis().values()
    probe = json.dumps([asdict(e) for v in (1, values[-1]) for e in task.sample_at(torch.Generator().manual_seed(0), 8, v)],
                       sort_keys=True, ensure_ascii=False)
    key = json.dumps({"task": spec.task, "options": spec.full_options(), "per_value": per_value, "seed": spec.seed,
                      "values": values, "codec": spec.codec().tokens, "labels": hashlib.sha256(probe.encode()).hexdigest()},
                     sort_keys=True, ensure_ascii=False)
    folder = os.path.join(root, f"{spec.task}-curve-{hashlib.sha256(key.encode()).hexdigest()[:10]}")
    clean_stale(root)
    if os.path.isdir(folder):
        return folder
    _not_a_file(folder)
    check_writable(root, "--data-dir")
    tmp = tmp_dir(root)
    try:
        hashes = {f"at-{v}": _write_split(tmp, f"at-{v}", _draw(task, "test", per_value, spec.seed, at=v)) for v in values}
        _publish(tmp, folder, {"task": spec.task, "options": spec.full_options(), "axis": task.axis().name,
                               "trained": task.axis().trained, "values": values, "per_value": per_value,
                               "seed": spec.seed, "sha256": hashes, "codec": spec.codec().to_json()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_curve(folder: str) -> dict[int, list[Example]]:
    """A curve folder's sets, value -> examples (each file checked as load_split checks a split)."""
    return {v: load_split(folder, f"at-{v}") for v in read_meta(folder)["values"]}


def read_meta(folder: str) -> dict:
    """A data folder's meta.json, checked for what is read of it: an object whose sha256 maps
    each file to a hex digest (and, for a curve folder, whose values are whole numbers)."""
    path = os.path.join(folder, "meta.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path} is missing; delete {folder} to regenerate it") from None
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, a huge number, nesting too deep
        raise DataError(f"{path} is not valid JSON ({str(e)[:200]}); delete {folder} to regenerate it") from None
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}); delete {folder} to regenerate it") from None
    ok = isinstance(meta, dict) and isinstance(meta.get("sha256"), dict) \
        and all(isinstance(k, str) and isinstance(v, str) for k, v in meta["sha256"].items())
    if ok and "values" in meta:
        ok = isinstance(meta["values"], list) and all(type(v) is int for v in meta["values"])
    if not ok:
        raise DataError(f"{path} is not a data folder's meta.json (no sha256 of its files); delete {folder} to regenerate it")
    return meta


def codec_of_folder(folder: str) -> Codec:
    try:
        return Codec.of(read_meta(folder))
    except (ValueError, TypeError):
        raise DataError(f"{folder}/meta.json has no valid codec; delete {folder} to regenerate it") from None


def load_split(folder: str, split: str) -> list[Example]:
    """Read one split, checking every line (against the folder's codec) and the file's sha256."""
    meta = read_meta(folder)
    codec = codec_of_folder(folder)
    path = os.path.join(folder, f"{split}.jsonl")
    if not os.path.isfile(path):
        raise DataError(f"{path} is missing; delete {folder} to regenerate it")
    out = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for lineno, line in enumerate(f, 1):
                try:
                    d = json.loads(line)
                    ex = Example(d["input"], d["target"], d["meta"])
                    if not (isinstance(ex.input, str) and isinstance(ex.target, str) and isinstance(ex.meta, dict)):
                        raise TypeError("input and target must be strings, meta an object")
                    codec.encode(ex.input), codec.encode(ex.target)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnknownSymbols) as e:
                    reason = f"missing field {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
                    raise DataError(f"{path}:{lineno}: bad line ({reason}); delete {folder} to regenerate it") from None
                out.append(ex)
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text; delete {folder} to regenerate it") from None
    if _sha256(path) != meta.get("sha256", {}).get(split):
        raise DataError(f"{path} does not match the sha256 in meta.json (it was changed); "
                        f"delete {folder} to regenerate it")
    return out


# ----------------------------------------------------------------------------- tokens

def load_batch(folder: str, split: str, codec: Codec) -> Batch:
    """A whole split as one Batch in codec's ids, encoded from the checked JSON Lines file every
    time (about a second per 100,000 examples, before a run's clock starts): no token cache, as a
    cache is one more file that could disagree with the split it stands for."""
    try:
        return codec.batch(load_split(folder, split))  # checks every line and the sha256
    except UnknownSymbols as e:  # the run's codec lacks a symbol of this data
        raise DataError(f"{folder}/{split}.jsonl: {e}") from None


# ----------------------------------------------------------------------------- command line

def task_flags() -> dict:
    """Every task option as one flag: dest -> [(task name, field)] of the tasks that declare it
    (two tasks may share an option name, e.g. max_len, if they give it the same type)."""
    out = {}
    for name, cls in TASKS.items():
        for f in options_of(cls.Config):
            out.setdefault(f.name, []).append((name, f))
    for dest, decls in out.items():
        if len({_flag_type(f) for _, f in decls}) > 1:
            raise TypeError(f"tasks {', '.join(t for t, _ in decls)} declare option {dest} with different types")
    return out


def _flag_type(f):
    """The type a flag converts to: the field's, or the one that is not None in `int | None`."""
    return next((t for t in typing.get_args(f.type) if t is not type(None)), f.type)


def add_data_args(p: argparse.ArgumentParser, task_default: str | None = "bracket"):
    """The data flags: --task, one flag per task option (tasks/*.py Config), the split sizes, the
    data seed and folder. A task option's flag defaults to None: not given, so the task's default."""
    g = p.add_argument_group("data")
    g.add_argument("--task", default=task_default, help=f"{' | '.join(TASKS)}" + (f" (default {task_default})" if task_default else ""))
    for dest, decls in task_flags().items():
        f = decls[0][1]
        help = "; ".join(f"{t}: {f.metadata['help']}" + ("" if f.default in (None, False) else f" (default {f.default!r})")
                         for t, f in decls)
        flag = "--" + dest.replace("_", "-")
        if _flag_type(f) is bool:
            g.add_argument(flag, action="store_true", default=None, help=help)
        else:
            g.add_argument(flag, type=_flag_type(f), choices=f.metadata.get("choices"), help=help)
    for split, n in DEFAULT_SIZES.items():
        g.add_argument(f"--{split}-size", type=int, default=n, help=f"examples in the {split} split (default {n})")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the data splits (default 0)")
    g.add_argument("--data-dir", default="data", help="where data folders live (default data/)")


def _option_names(task: str) -> set:
    return {f.name for f in options_of(TASKS[task].Config)}


def spec_from_args(a) -> DataSpec:
    if a.task not in TASKS:
        raise DataError(f"unknown task {a.task!r}; choose one of: {', '.join(TASKS)}")
    given = {k: getattr(a, k) for k in task_flags() if getattr(a, k) is not None}
    if other := sorted(set(given) - _option_names(a.task)):
        raise DataError(f"option --{other[0].replace('_', '-')} does not apply to task {a.task}")
    spec = DataSpec(a.task, given, a.train_size, a.val_size, a.test_size, a.ood_size, a.data_seed)
    spec.task_instance  # noqa: B018 -- options the task refuses fail now, in one line
    return spec


def check_kept(a, parser, spec: DataSpec, what: str, keeps: str):
    """What a resumed run or study keeps: a data flag given with another value than spec's (the
    data it was made with), or one that does not apply to its task, is a DataError naming it.
    A task option is compared by its effect (an option left out at creation took the default)."""
    def refuse(dest, made, new):
        flag = "--" + dest.replace("_", "-")
        was = f"without {flag}" if made is None else f"with {flag} {made}"
        raise DataError(f"{what} was made {was}, not {flag} {new}: {keeps}")
    given = {k for k in ("task", *task_flags(), *(f"{s}_size" for s in SPLITS), "data_seed")
             if getattr(a, k) != parser.get_default(k)}
    if "task" in given and a.task != spec.task:
        refuse("task", spec.task, a.task)
    for k, v in [(f"{split}_size", n) for split, n in spec.sizes().items()] + [("data_seed", spec.seed)]:
        if k in given and getattr(a, k) != v:
            refuse(k, v, getattr(a, k))
    names = _option_names(spec.task)
    if other := sorted(given & set(task_flags()) - names):
        raise DataError(f"option --{other[0].replace('_', '-')} does not apply to the task of {what} ({spec.task})")
    made = spec.task_instance.cfg
    for k in sorted(given & names):
        if getattr(make_task(spec.task, {**(spec.options or {}), k: getattr(a, k)}).cfg, k) != getattr(made, k):
            refuse(k, getattr(made, k), getattr(a, k))


def summary(folder: str):
    from rich.console import Console
    from rich.table import Table
    meta = read_meta(folder)
    codec = codec_of_folder(folder)
    table = Table(title=f"{folder}  ({meta['task']} {json.dumps(meta['options'], ensure_ascii=False)})")
    for col in ("split", "examples", "input length", "target length", "empty targets", "example", "sha256"):
        table.add_column(col)
    for split in SPLITS:
        exs = load_split(folder, split)
        il = [len(codec.encode(e.input)) for e in exs]
        tl = [len(codec.encode(e.target)) for e in exs]
        ex = exs[0]
        table.add_row(split, str(len(exs)), f"{min(il)}..{max(il)}", f"{min(tl)}..{max(tl)}",
                      f"{sum(t == 0 for t in tl) / len(tl):.1%}", f"{ex.input} → {ex.target}",
                      meta["sha256"][split][:12])
    Console().print(table)


def main(argv=None):
    cli.catch_ctrl_c()
    p = cli.Parser(description="Write train/val/test/ood splits as JSON Lines and print a summary.")
    add_data_args(p)
    a = p.parse_args(argv)
    try:
        spec = spec_from_args(a)
        folder = prepare(spec, a.data_dir)
        summary(folder)
    except UserError as e:
        cli.fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
