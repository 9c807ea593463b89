"""LSTM language model over the token stream. The model, its config, training defaults and search
space live in archs/rnn.py, shared with gru; lstm's own task defaults are below (docs/defaults.md
has their measurements)."""
from functools import partial

from archs.rnn import EXPORT, GROWN_BY_TASK, LORA_TARGETS, RNNLM, TRAIN_DEFAULTS, Config, prepare_export, search_space  # noqa: F401

Model = partial(RNNLM, cell="lstm")


def task_defaults(task) -> dict:
    """Two stacked layers where the task multiplies (the partial products need depth)."""
    return {"n_layer": 2} if task.traits().multiplies else {}


def task_train_defaults(task) -> dict:
    return {}
