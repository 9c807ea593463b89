"""The architecture registry: short name -> module. Each module defines `Config` (a dataclass whose
vocab_size is the run codec's size), `Model(cfg)`: a tensor function named by its `layout`
(decoder, encdec or slots: layouts.py says what each takes and returns), `TRAIN_DEFAULTS` and
`search_space(trial)` for hyper.py, and may define `task_defaults(task)` and `task_train_defaults(task)`:
model and training settings that suit a task better than Config's and TRAIN_DEFAULTS, each with its
measurement. Adding an architecture means one file and one line here."""
from dataclasses import asdict, fields

from archs import ber, gpt, gru, lstm, tra
from archs.common import n_params  # noqa: F401

ARCHS = {"gru": gru, "tra": tra, "lstm": lstm, "ber": ber, "gpt": gpt}
ALIASES = {"transformer": "tra", "bert": "ber", "encoder-decoder": "tra"}


def resolve(name: str) -> str:
    """Short name of an architecture given its short or long name; KeyError if unknown."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in ARCHS:
        raise KeyError(name)
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
    prefer = getattr(ARCHS[arch], "task_defaults", None)
    return prefer(task) if prefer else {}


def train_defaults(arch: str, task) -> dict:
    """The training settings the architecture prefers for this task (below train.py's flags)."""
    mod = ARCHS[arch]
    prefer = getattr(mod, "task_train_defaults", None)
    return {**mod.TRAIN_DEFAULTS, **(prefer(task) if prefer else {})}
