"""The architecture registry: every module of this package that defines a `Model` is an
architecture, named after its file (archs/gru.py is `gru`); adding one is adding its file (README:
Adding an architecture). Each provides what `Arch` below declares. Models are tensor functions
named by their `layout` (layouts.py); they know nothing of tasks: a task reaches an architecture
only through `task_defaults(task)` and `task_train_defaults(task)`, which read the task's declared
Traits and answer length (tasks/common.py), never its options."""
import importlib
import pkgutil
import typing
from dataclasses import MISSING, asdict, fields
from typing import Protocol

from archs.common import n_params  # noqa: F401
from errors import SettingsError, UnknownArch


class Arch(Protocol):
    """What an architecture module provides."""
    Config: type                  # dataclass of model settings; vocab_size is the run codec's size;
                                  # its __post_init__ checks the values (SettingsError)
    Model: type                   # Model(cfg): an nn.Module with a `layout` attribute (layouts.py)
    TRAIN_DEFAULTS: dict          # training settings (settings.Train fields: lr, batch_size, ...)
    GROWN_BY_TASK: tuple          # settings task_defaults sizes to a task's answers, which
                                  # --init-from enlarges for a longer-answered task (ber: n_slots)
    LORA_TARGETS: dict            # LoRA target name -> prefixes of the parameter names it adapts (lora.py)
    EXPORT: dict | None           # what the ONNX export needs of the decoding state (archs/common.py
                                  # ATTENTION_EXPORT); None: not exported (export.py says so in one line)
    # optional: ALIASES, a tuple of other names it answers to (tra: "transformer")

    def search_space(self, trial) -> dict: ...      # {"model": {...}, "train": {...}} for hyper.py
    def task_defaults(self, task) -> dict: ...      # model settings for a task (settings.py, layer 4)
    def task_train_defaults(self, task) -> dict: ...  # training settings for a task (layer 4)
    def prepare_export(self) -> None: ...           # optional: called before each ONNX export
    def explain(self, model, prompt, answer) -> list: ...  # optional: explain.py's panels of how the model
                                                           # wrote answer (archs/common.py panel); without it
                                                           # explain.py says it is not available


def _discover() -> dict:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "Model") and hasattr(module, "Config"):
            found[info.name] = module
    return found


ARCHS = _discover()
ALIASES = {alias: name for name, mod in ARCHS.items() for alias in getattr(mod, "ALIASES", ())}


def resolve(name: str) -> str:
    """Short name of an architecture given its short or long name; UnknownArch if there is none."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in ARCHS:
        raise UnknownArch(name, ARCHS)
    return key


def _typed(name: str, kind, value):
    """value as the type its setting declares (--set gives text); SettingsError if it is not one."""
    kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # `int | None` -> int
    if not isinstance(value, str) or kind is str:
        return value
    text = value.strip().lower()
    try:
        if kind is bool:
            return {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}[text]
        if kind in (int, float):
            return kind(text)
    except (KeyError, ValueError):
        words = {bool: "true or false", int: "a whole number", float: "a number"}
        raise SettingsError(f"setting {name} takes {words[kind]}, got {value!r}") from None
    raise SettingsError(f"setting {name} cannot be set from text")


def config(arch: str, settings: dict | None = None):
    """The architecture's Config with settings (values typed by their declaration), checked by the
    Config itself; SettingsError for a setting it does not have or a value it refuses."""
    cls = ARCHS[arch].Config
    known = {f.name: f.type for f in fields(cls)}
    bad = set(settings or {}) - set(known)
    if bad:
        raise SettingsError(f"{arch} has no setting {sorted(bad)[0]!r}; it has: {', '.join(known)}")
    try:
        return cls(**{k: _typed(k, known[k], v) for k, v in (settings or {}).items()})
    except TypeError as e:  # a value of the wrong kind where the Config computes with it
        raise SettingsError(f"{arch}: {e}") from None


def config_dict(arch: str, settings: dict | None = None) -> dict:
    """Every setting of the architecture's Config, as settings make it (see config)."""
    return asdict(config(arch, settings))


def defaults(arch: str) -> dict:
    """The architecture's Config field defaults (layer 1 of settings.py)."""
    return {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(ARCHS[arch].Config)}


MAX_PARAMS = 10**9  # the largest model built: 4 GB of float32 weights, 16 GB with AdamW's state and gradients


def shapes(arch: str, settings: dict | None = None) -> dict:
    """The name and shape of every tensor of the model these settings make, found without
    allocating any (the model built on torch's meta device); SettingsError for a model over
    MAX_PARAMS parameters, so an absurd size is refused before memory is spent on it."""
    import torch
    cfg = config(arch, settings)
    with torch.device("meta"):
        state = ARCHS[arch].Model(cfg).state_dict()
    count = sum(t.numel() for t in state.values())
    if count > MAX_PARAMS:
        raise SettingsError(f"{arch} with these settings has {count:,} parameters, over the {MAX_PARAMS:,} a run may have")
    return {name: tuple(t.shape) for name, t in state.items()}


def build(arch: str, settings: dict | None = None):
    """A new model of the architecture with these settings, and its complete settings; checked
    first on the meta device (shapes), so an absurd size is one line, not an allocation."""
    shapes(arch, settings)
    cfg = config(arch, settings)
    return ARCHS[arch].Model(cfg), asdict(cfg)


def task_defaults(arch: str, task) -> dict:
    """The model settings the architecture prefers for this task (layer 4 of settings.py)."""
    return ARCHS[arch].task_defaults(task)
