"""The task registry: every Task subclass defined in a module of this package, by its `name`
(tasks/common.py says what a task declares). Adding a task is adding its file."""
import importlib
import inspect
import pkgutil
import typing

from codec import Codec
from errors import DataError
from tasks.common import Example, Task, Traits, options_of  # noqa: F401


def _discover() -> dict:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Task) and obj.__module__ == module.__name__ and not inspect.isabstract(obj):
                if obj.name in found:
                    raise TypeError(f"two tasks are named {obj.name!r}: {found[obj.name].__module__} and {module.__name__}")
                found[obj.name] = obj
    return found


TASKS = _discover()


MAX_OPTION = 10_000  # the largest whole-number option (a length, a depth, a digit count): no model here reads more
MAX_TEXT_OPTION = 1000  # the longest text option (an alphabet, bracket kinds)


def _check_option(task: str, f, value):
    """A task option's value has its declared type (int, str, bool, or None where `| None`) and a
    size a task can honestly take: DataError naming it otherwise."""
    kinds = typing.get_args(f.type) or (f.type,)
    if value is None and type(None) in kinds:
        return
    kind = next(k for k in kinds if k is not type(None))
    if type(value) is not kind and not (kind is float and type(value) is int):
        raise DataError(f"{task} option {f.name} takes {kind.__name__}, got {value!r}"[:300])
    if kind is int and not -MAX_OPTION <= value <= MAX_OPTION:
        raise DataError(f"{task} option {f.name} must be from {-MAX_OPTION} to {MAX_OPTION}, got {value}"[:300])
    if kind is str and len(value) > MAX_TEXT_OPTION:
        raise DataError(f"{task} option {f.name} holds at most {MAX_TEXT_OPTION} characters, got {len(value)}")


def make_task(name: str, config: dict | None = None) -> Task:
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    cls = TASKS[name]
    if config is not None and not isinstance(config, dict):
        raise DataError(f"{name} options must be a JSON object, got {config!r}")
    declared = {f.name: f for f in options_of(cls.Config)}
    unknown = set(config or {}) - set(declared)
    if unknown:
        raise DataError(f"unknown {name} option(s): {', '.join(sorted(unknown))}"[:300])
    for k, v in (config or {}).items():
        _check_option(name, declared[k], v)
    return cls(cls.Config(**(config or {})))


def codec_of(task) -> Codec:
    """The codec a new run or data folder of this task gets: the task's symbols after the specials."""
    return Codec(task.symbols())
