"""A run's settings, decided in one place. What was asked (a Request: the architecture, the budget,
the data, and any setting given) becomes the complete settings of the run (Settings) by resolve(),
a pure function. train.py, hyper.py (every trial; the first is exactly what train.py trains),
python -m bench and fine-tuning all call it, and a run's config.json records its result.

The layers, lowest first; each replaces what the layers below it say:
  1. the harness: the fields of Train below, and of the architecture's Config (archs/<arch>.py)
  2. the architecture, on any task: its TRAIN_DEFAULTS
  3. every architecture alike, by the task's traits: weight decay 0.1 where the task multiplies
  4. the architecture, by the task's traits: task_defaults(task) (model), task_train_defaults(task)
  5. the run this one continues (--resume: its model, codec and data, and its training settings
     but for the curriculum, which a resumed run leaves out unless asked), or starts from
     (--init-from: its model settings, enlarged where the new task needs more: GROWN_BY_TASK)
  6. what was asked: --set and the flags of train.py, a trial's draws, a bench preset's settings
  7. what the codec fixes: the vocabulary size, and the ids digit places look for
docs/defaults.md says why each default of layers 2-4 is what it is, with the measurements.
Every value is checked where it is declared (Train here, each architecture's Config): a bad one
is a SettingsError, one line.
"""
import re
from dataclasses import asdict, dataclass, field, fields

import archs
from codec import Codec
from dataset import DataSpec
from errors import RunError, SettingsError
from tasks import codec_of

# ----------------------------------------------------------------------------- budget

UNITS = {"s": 1, "sec": 1, "min": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
MAX_BUDGET = 2 * 86400
MAX_STEPS = 10**9
TIME_HELP = "a number and a unit: 30s, 1min, 10min, 1hour, 6hours, 2days (at most 2days)"
BUDGET_HELP = f"{TIME_HELP}, or optimizer steps: 30000steps"


def parse_budget(text: str) -> float:
    """Seconds in a time budget like `90s`, `1min`, `1hour`, `2days`; SettingsError with the reason."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|sec|min|hours?|days?)", str(text).strip())
    if not m:
        raise SettingsError(f"malformed budget {text!r}; expected {TIME_HELP}")
    seconds = float(m.group(1)) * UNITS[m.group(2)]
    if seconds < 1 or seconds > MAX_BUDGET:
        raise SettingsError(f"budget {text!r} is out of range; expected 1s up to 2days")
    return seconds


@dataclass(frozen=True)
class Budget:
    """What a run may spend: seconds of training (`10min`) or optimizer steps (`30000steps`)."""
    amount: float
    unit: str  # "s" or "steps"

    @classmethod
    def parse(cls, text: str) -> "Budget":
        m = re.fullmatch(r"(\d+)steps?", str(text).strip())
        if not m:
            try:
                return cls(parse_budget(text), "s")
            except SettingsError as e:
                raise SettingsError(str(e).replace(TIME_HELP, BUDGET_HELP)) from None
        if not 1 <= int(m.group(1)) <= MAX_STEPS:
            raise SettingsError(f"budget {text!r} is out of range; expected 1steps up to {MAX_STEPS}steps")
        return cls(int(m.group(1)), "steps")

    def frac(self, elapsed: float, steps: int) -> float:
        """The share spent after `elapsed` seconds and `steps` steps."""
        return (steps if self.unit == "steps" else elapsed) / self.amount

    def left(self, elapsed: float, steps: int) -> str:
        if self.unit == "steps":
            return f"step {steps} of {self.amount:.0f}"
        return f"{elapsed:.0f}s / {max(0.0, self.amount - elapsed):.0f}s left"

    @property
    def seconds(self) -> float | None:
        return self.amount if self.unit == "s" else None


# ----------------------------------------------------------------------------- settings

def _check(ok: bool, message: str):
    if not ok:
        raise SettingsError(message)


@dataclass(frozen=True)
class Train:
    """A run's training settings, complete and checked; the field defaults are layer 1."""
    lr: float = 3e-3                 # peak learning rate
    batch_size: int = 64             # examples per step
    warmup: float = 0.02             # share of the budget (time or steps) over which the learning rate warms up
    weight_decay: float = 0.0        # AdamW's, on weight matrices only
    grad_clip: float = 1.0           # gradient norm clipped to this (0: not clipped)
    precision: str = "fp32"          # or bf16: the forward pass and loss under bfloat16 autocast (weights,
                                     # optimizer and scoring stay float32)
    curriculum: float = 0.0          # share of the budget over which the longest prompt a batch may hold
                                     # grows from the train split's shortest to its longest (0: none)
    bucket: bool = True              # batch examples of similar length together
    val_points: int = 10             # validate at 1/10, 2/10, ... of the budget
    seed: int = 0                    # initialisation and batch order

    def __post_init__(self):
        _check(self.lr > 0, f"the learning rate must be positive, got {self.lr}")
        _check(self.batch_size >= 1, f"the batch size must be at least 1, got {self.batch_size}")
        _check(0 <= self.warmup < 1, f"the warm-up is a share of the budget, from 0 to below 1, got {self.warmup}")
        _check(self.weight_decay >= 0, f"the weight decay must be at least 0, got {self.weight_decay}")
        _check(self.grad_clip >= 0, f"the gradient clip must be at least 0 (0: none), got {self.grad_clip}")
        _check(self.precision in ("fp32", "bf16"), f"precision is fp32 or bf16, got {self.precision!r}")
        _check(0 <= self.curriculum < 1, f"--curriculum is the share of the budget the curriculum lasts, "
                                         f"from 0 (none) to below 1, got {self.curriculum}")
        _check(self.val_points >= 1, f"validation points must be at least 1, got {self.val_points}")


TRAIN_KEYS = tuple(f.name for f in fields(Train))
LORA_TARGETS = "attn,mlp,rnn"


@dataclass(frozen=True)
class Lora:
    """Low-rank adapters for fine-tuning (lora.py): rank, scale alpha / rank, the weights adapted."""
    rank: int
    alpha: float
    targets: str = LORA_TARGETS

    def __post_init__(self):
        _check(self.rank >= 1, f"--lora is the adapters' rank, a whole number of at least 1, got {self.rank}")
        _check(self.alpha > 0, f"--lora-alpha must be positive, got {self.alpha}")
        import lora
        lora.parse_targets(self.targets)


@dataclass
class Request:
    """What a run was asked for: the architecture, the budget, the data, and the settings given (None:
    not given, so the layers below decide); then where it runs and what it starts from."""
    arch: str
    budget: str
    data: DataSpec = field(default_factory=DataSpec)
    model: dict = field(default_factory=dict)  # model settings (--set), values typed or as text
    lr: float | None = None
    batch_size: int | None = None
    warmup: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    precision: str | None = None
    curriculum: float | None = None
    bucket: bool | None = None
    val_points: int | None = None
    seed: int | None = None
    resume: str | None = None        # continue this run (its model, data and settings)
    init_from: str | None = None     # start from this run's weights (and codec) on the data given
    lora: int | None = None          # with init_from: train rank-r adapters instead of all weights
    lora_alpha: float | None = None  # adapter scale alpha / r (default alpha = 2r)
    lora_targets: str | None = None  # default LORA_TARGETS
    device: str = "auto"             # where it runs (devices.choose), not a setting of the model
    threads: int | None = None
    models_dir: str = "models"
    data_dir: str = "data"
    tensorboard: bool = False        # also write TensorBoard event files into the run folder (training.Board)

    def given(self) -> dict:
        """The training settings this request names."""
        return {k: getattr(self, k) for k in TRAIN_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class Settings:
    """A run's complete settings: what resolve() decides and config.json records."""
    arch: str
    budget: str
    data: DataSpec
    model: dict          # every field of the architecture's Config
    train: Train
    codec: Codec
    lora: Lora | None = None
    resume: str | None = None
    init_from: str | None = None

    @property
    def task(self):
        return self.data.task_instance


def train_defaults(arch: str, task) -> dict:
    """Layers 2-4 of the training settings: the architecture's TRAIN_DEFAULTS, weight decay 0.1
    where the task multiplies (one rule for every architecture; docs/defaults.md), then the
    architecture's task_train_defaults."""
    mod = archs.ARCHS[arch]
    shared = {"weight_decay": 0.1} if task.traits().multiplies else {}
    return {**mod.TRAIN_DEFAULTS, **shared, **mod.task_train_defaults(task)}


def with_codec(model: dict, codec: Codec) -> dict:
    """Layer 7: model settings with what the codec fixes, the vocabulary size and, for digit places
    (places, place_bias), the ids of the digits and of the decimal point, by which a model finds them."""
    model = {**model, "vocab_size": len(codec)}
    if model.get("places") or model.get("place_bias"):
        model["digit_ids"], model["point_id"] = codec.number_ids()
    return model


def grown_codec(parent: Codec, task) -> Codec:
    """A fine-tuned run's codec: the parent's, with the task's new symbols appended (the parent's ids stay)."""
    return Codec(parent.symbols + [s for s in task.symbols() if s not in parent.stoi])


def resolve(request: Request, resumed: dict | None = None, parent: dict | None = None) -> Settings:
    """The complete settings of the run request asks for (the layers in the module's docstring).
    resumed: config.json of the run request.resume names; parent: that of request.init_from.
    SettingsError (RunError for a run of another architecture) when something cannot apply."""
    arch = archs.resolve(request.arch)
    Budget.parse(request.budget)
    if request.resume and request.init_from:
        raise SettingsError("--init-from starts a new run from a parent and --resume continues a run: choose one")
    if request.lora is not None and not request.init_from:
        raise SettingsError("--lora adapts a trained model: give the parent run with --init-from")
    if (request.lora_alpha is not None or request.lora_targets is not None) and request.lora is None:
        raise SettingsError("--lora-alpha and --lora-targets need --lora")
    given = request.given()
    if request.resume:
        if request.model:
            raise SettingsError("--set cannot apply with --resume: a resumed run keeps its own data and model settings "
                                "(train a new run for others)")
        _same_arch(resumed, arch, request.resume, "--resume continues it as it was")
        data, codec, model = DataSpec(**resumed["data"]), Codec.of(resumed), dict(resumed["model"])
        recorded = {k: v for k, v in resumed.get("train", {}).items() if k in ("lr", "batch_size", "warmup", "weight_decay",
                                                                                 "grad_clip", "precision") and v is not None}
        train = {**asdict(Train()), **recorded, "curriculum": 0.0, **given}
    else:
        data, task = request.data, request.data.task_instance
        train = {**asdict(Train()), **train_defaults(arch, task), **given}
        if request.init_from:
            if request.model:
                raise SettingsError("--set cannot apply with --init-from: the model's settings are the parent's")
            _same_arch(parent, arch, request.init_from, f"--init-from keeps the parent's architecture "
                       f"(python train.py {parent.get('arch')} ... --init-from {request.init_from})")
            codec = grown_codec(Codec.of(parent), task)
            model, needs = dict(parent["model"]), archs.task_defaults(arch, task)
            for k in archs.ARCHS[arch].GROWN_BY_TASK:
                model[k] = max(model[k], needs[k])
        else:
            codec = codec_of(task)
            model = {**archs.task_defaults(arch, task), **request.model}
    model = archs.config_dict(arch, with_codec(model, codec))
    lora = None
    if request.lora is not None:
        lora = Lora(request.lora, request.lora_alpha if request.lora_alpha is not None else 2 * request.lora,
                    request.lora_targets or LORA_TARGETS)
    return Settings(arch, request.budget, data, model, Train(**train), codec, lora, request.resume, request.init_from)


def _same_arch(config: dict | None, arch: str, path: str, rule: str):
    if config is None:
        raise RunError(f"no run folder at {path}")
    if archs.resolve(config.get("arch", "?")) != arch:
        raise RunError(f"{path} is a {config.get('arch')} run, not {arch}; {rule}")


def parse_set(items) -> dict:
    """--set key=value pairs as {key: value text}; each value takes its type from the setting's
    declaration when the model is configured (archs.config)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SettingsError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out

