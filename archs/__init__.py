"""The architecture registry: short name -> module. Each module defines `Config` (a dataclass whose
vocab_size is the run codec's size), `Model(cfg)`: a tensor function named by its `layout`
(decoder, encdec or slots: layouts.py says what each takes and returns), `TRAIN_DEFAULTS` and
`search_space(trial)` for hyper.py, and may define `task_defaults(task)` and `task_train_defaults(task)`:
model and training settings that suit a task better than Config's and TRAIN_DEFAULTS, each with its
measurement (weight decay for * and / is one rule for all five: `train_defaults`). Adding an
architecture means one file and one line here."""
from dataclasses import asdict, fields

from archs import ber, gpt, gru, lstm, tra
from archs.common import multiplies, n_params  # noqa: F401

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
    """The architecture's TRAIN_DEFAULTS, and weight decay 0.1 for arithmetic with * or / (below
    train.py's flags). The four-operation set (2 digits, negatives, decimals, --format scratch,
    1,000,000 training problems), 2 cores, with weight decay against without:
      gpt  30000steps, seeds 0-2: 97.85 / 98.05 / 97.85% against 93.25 / 91.95 / 85.10%; every
           operation rose, multiplication most, and the spread between seeds fell from 8 points to 0.2.
      gru  10min, seed 0: 87.10% in 52,911 steps; bench seeds 0-2 87.05 / 88.05 / 87.05% against
           65.70-66.45% in twice the steps (seeds 0, 1; multiplication 36-40% -> 62.28%).
      lstm 10min, seed 0: 90.85% in 65,816 steps; bench seeds 0-2 91.15 / 91.10 / 91.05% against
           85.80-86.25% in 166,000-169,000 steps (seeds 0, 1).
      tra  width 32, 51,261 steps, seed 0: 81.20% against 79.60% (within two seeds' spread).
      ber  10min, bench seeds 0-2: 75.40 / 73.05 / 74.40% (median 74.40%, 20,548 steps) against
           72.50 / 62.70 / 49.15% (2026-11-24 to 12-01); measured with it and not kept (seed 0):
           four layers 53.80% (10,586 steps), refine=True 27.95% (18,547 steps).
    (gru and lstm figures are from one layer; two layers are their default for * and / since.)
    An architecture's own task_train_defaults comes last (gru: weight decay on bracket closing)."""
    mod = ARCHS[arch]
    own = getattr(mod, "task_train_defaults", None)
    return {**mod.TRAIN_DEFAULTS, **({"weight_decay": 0.1} if multiplies(task) else {}), **(own(task) if own else {})}
