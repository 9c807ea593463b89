"""The architecture registry: short name -> module. Each module is one architecture and provides
what `Arch` below declares; adding an architecture is one file and one line in ARCHS (README:
Adding an architecture). Models are tensor functions named by their `layout` (layouts.py); they
know nothing of tasks: a task reaches an architecture only through `task_defaults(task)`, which
reads the task's declared Traits and answer length (tasks/common.py), never its options."""
from dataclasses import asdict, fields
from typing import Protocol

from archs import ber, gpt, gru, lstm, tra
from archs.common import n_params  # noqa: F401

ARCHS = {"gru": gru, "tra": tra, "lstm": lstm, "ber": ber, "gpt": gpt}
ALIASES = {"transformer": "tra", "bert": "ber", "encoder-decoder": "tra"}


class Arch(Protocol):
    """What an architecture module provides."""
    Config: type                  # dataclass of model settings; vocab_size is the run codec's size
    Model: type                   # Model(cfg): an nn.Module with a `layout` attribute (layouts.py)
    TRAIN_DEFAULTS: dict          # lr, batch_size, optionally warmup, weight_decay
    GROWN_BY_TASK: tuple          # settings task_defaults sizes to a task's answers, which
                                  # --init-from enlarges for a longer-answered task (ber: n_slots)

    def search_space(self, trial) -> dict: ...      # {"model": {...}, "train": {...}} for hyper.py
    def task_defaults(self, task) -> dict: ...      # model settings for a task (below --set)
    def task_train_defaults(self, task) -> dict: ...  # training settings for a task (below flags)


class UnknownArch(ValueError):
    def __init__(self, name):
        super().__init__(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}")


def resolve(name: str) -> str:
    """Short name of an architecture given its short or long name; UnknownArch if there is none."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in ARCHS:
        raise UnknownArch(name)
    return key


def config(arch: str, overrides: dict | None = None):
    cls = ARCHS[arch].Config
    known = {f.name: f.type for f in fields(cls)}
    bad = set(overrides or {}) - set(known)
    if bad:
        raise ValueError(f"{arch} has no setting {sorted(bad)[0]!r}; it has: {', '.join(known)}")
    return cls(**(overrides or {}))


def build(arch: str, overrides: dict | None = None):
    cfg = config(arch, overrides)
    return ARCHS[arch].Model(cfg), asdict(cfg)


def task_defaults(arch: str, task) -> dict:
    """The model settings the architecture prefers for this task (below --set, above Config's)."""
    return ARCHS[arch].task_defaults(task)


def train_defaults(arch: str, task) -> dict:
    """The architecture's TRAIN_DEFAULTS, then weight decay 0.1 where the task multiplies (one
    rule for all five; docs/defaults.md), then the architecture's own task_train_defaults (all
    below train.py's flags)."""
    mod = ARCHS[arch]
    shared = {"weight_decay": 0.1} if task.traits().multiplies else {}
    return {**mod.TRAIN_DEFAULTS, **shared, **mod.task_train_defaults(task)}
