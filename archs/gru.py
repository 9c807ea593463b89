"""GRU language model over the token stream. The model, its config, training defaults
and search space live in archs/rnn.py, shared with lstm; override them here if gru needs its own."""
from functools import partial

from archs.rnn import TRAIN_DEFAULTS, Config, RNNLM, search_space, task_train_defaults  # noqa: F401

Model = partial(RNNLM, cell="gru")
