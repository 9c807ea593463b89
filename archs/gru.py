"""GRU language model over the token stream. The model, its config, training defaults and search
space live in archs/rnn.py, shared with lstm; gru's own task defaults are below (docs/defaults.md
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

Model = partial(RNNLM, cell="gru")


def task_defaults(task) -> dict:
    """Width 96 on nested tasks (bracket closing), where gru's budget is bound by steps and a
    narrower step is faster; two stacked layers where the task multiplies."""
    if task.traits().nested:
        return {"d_model": 96}
    return {"n_layer": 2} if task.traits().multiplies else {}


def task_train_defaults(task) -> dict:
    """Weight decay 0.1 on nested tasks (bracket closing)."""
    return {"weight_decay": 0.1} if task.traits().nested else {}
