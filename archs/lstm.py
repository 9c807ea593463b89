"""LSTM language model over the token stream. The model, its config, training defaults and search
space live in archs/rnn.py, shared with gru; lstm's own task defaults are below (docs/defaults.md
has their measurements)."""
from functools import partial

from archs.rnn import (  # noqa: F401
    EXPORT,
    GROWN_BY_TASK,
    LORA_TARGETS,
    RNNLM,
    TRAIN_DEFAULTS,
    Config,
    explain,
    prepare_export,
    search_space,
)

Model = partial(RNNLM, cell="lstm")


def task_defaults(task) -> dict:
    """Two stacked layers where the task multiplies (the partial products need depth)."""
    return {"n_layer": 2} if task.traits().multiplies else {}


def task_train_defaults(task) -> dict:
    return {}
