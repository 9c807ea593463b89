"""The task registry: name -> Task subclass (tasks/common.py says what a task declares). Adding a
task is one file and one line here."""
from codec import Codec
from tasks.arith import Arith
from tasks.bracket import Bracket
from tasks.reverse import Reverse
from tasks.common import BadInput, DataError, Example, Task, Traits, options_of  # noqa: F401

TASKS = {"bracket": Bracket, "arith": Arith, "reverse": Reverse}


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
