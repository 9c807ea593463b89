"""The task registry: name -> class. A task is one file that declares its config (a dataclass),
its symbols (the codec), how it samples examples and their metadata for breakdowns, and how it
reads what people type (`normalize`, `check`, `present`) and which part of an answer is scored (`scored`). Adding a task is one file and one line."""
from dataclasses import fields

from codec import Codec
from tasks.arith import Arith
from tasks.bracket import Bracket
from tasks.common import BadInput, DataError, Example  # noqa: F401

TASKS = {"bracket": Bracket, "arith": Arith}


def make_task(name: str, config: dict | None = None):
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    cls = TASKS[name]
    if config is not None and not isinstance(config, dict):
        raise DataError(f"{name} options must be a JSON object, got {config!r}")
    known = {f.name for f in fields(cls.Config)}
    unknown = set(config or {}) - known
    if unknown:
        raise DataError(f"unknown {name} option(s): {', '.join(sorted(unknown))}")
    return cls(cls.Config(**(config or {})))


def codec_of(task) -> Codec:
    """The codec a new run or data folder of this task gets: the task's symbols after the specials."""
    return Codec(task.symbols())
