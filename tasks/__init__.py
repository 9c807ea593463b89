"""The task registry: every Task subclass defined in a module of this package, by its `name`
(tasks/common.py says what a task declares). Adding a task is adding its file."""
import importlib
import inspect
import pkgutil

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


def make_task(name: str, config: dict | None = None) -> Task:
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    cls = TASKS[name]
    if config is not None and not isinstance(config, dict):
        raise DataError(f"{name} options must be a JSON object, got {config!r}")
    unknown = set(config or {}) - {f.name for f in options_of(cls.Config)}
    if unknown:
        raise DataError(f"unknown {name} option(s): {', '.join(sorted(unknown))}")
    return cls(cls.Config(**(config or {})))


def codec_of(task) -> Codec:
    """The codec a new run or data folder of this task gets: the task's symbols after the specials."""
    return Codec(task.symbols())
