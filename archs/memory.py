"""Recurrent language models with a differentiable external memory (Deletang et al., "Neural Networks
and the Chomsky Hierarchy", 2023, section A.2), over the token stream <bos> input <sep> target <eos>
(the decoder layout, layouts.py), shared by the stack and tape architectures (archs/stack.py,
archs/tape.py), which say what the memory is and how it is written.

At every token the controller, an Elman RNN (tanh, as the paper's), reads the token and the
memory's current cell (the stack's top, the cell under the tape's head); from its new state it
predicts the next token and chooses, by a softmax over the memory's actions, how to change the
memory (a mix of every action, weighted by their probabilities, so the memory is differentiable).
<pad> tokens leave the state as it was, so right-padded prompts and batches change nothing.

The memory never runs out: the stack deepens by one cell a token, and the tape is a ring of cells
sized by each problem's input length (archs/tape.py). The loop over tokens runs in Python, one
small step at a time, so these models train more slowly per token than the cuDNN-fused gru and
lstm; they are not exported to ONNX (onnxexport.py refuses them in one line).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

from archs.common import MAX_WIDTH, panel, require
from codec import PAD, SEP


@dataclass
class Config:
    d_model: int = 128   # the controller's units (and the token embedding's width)
    cell: int = 8        # the width of a memory cell (the paper's 8)
    dropout: float = 0.0
    vocab_size: int = 0  # len(codec): settings.with_codec sets it

    def __post_init__(self):
        require(1 <= self.d_model <= MAX_WIDTH and 1 <= self.cell <= MAX_WIDTH,
                f"d_model and cell must be from 1 to {MAX_WIDTH}, got {self.d_model} and {self.cell}")
        require(0 <= self.dropout < 1, f"dropout is a probability below 1, got {self.dropout}")


# Training defaults of both: the paper's learning rate (docs/defaults.md, memory architectures).
TRAIN_DEFAULTS = {"lr": 1e-3, "batch_size": 64, "warmup": 0.02}
GROWN_BY_TASK = ()
LORA_TARGETS = {"rnn": ("rec.", "read."), "memory": ("act.",), "head": ("head.",), "emb": ("emb.",)}
EXPORT = None  # a Python loop over the tokens: not exported (onnxexport.py says so in one line)


def search_space(trial):
    return {"model": {"d_model": trial.suggest_categorical("d_model", [64, 128, 256]),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


def task_defaults(task) -> dict:
    return {}


def task_train_defaults(task) -> dict:
    return {}


def explain(model, prompt, answer) -> list[dict]:
    """What explain.py draws (archs.Arch): the controller's state at every token it reads to write
    answer after prompt (units ordered by the token where each peaks) and the probability of each
    of the memory's actions there (push, pop, no-op; or the tape's moves)."""
    tokens = torch.cat((prompt, answer[:, :-1]), 1)
    model.trace = []
    try:
        model(tokens)
        states, actions = (torch.stack(x, 1) for x in zip(*model.trace))  # (d_model, T), (n_actions, T)
    finally:
        model.trace = None
    order = torch.argsort(states.abs().argmax(1) * states.shape[0] + torch.arange(states.shape[0]))
    ids = tokens[0].tolist()
    return [panel("controller state (units by the token where each peaks)", "state", states[order][None],
                  [f"u{u}" for u in order.tolist()], ids),
            panel("memory actions", "actions", actions[None], list(model.actions), ids)]


class MemoryRNN(nn.Module):
    """The controller and its loop. A subclass gives the memory: `actions` (their names),
    `new(lengths)` (an empty memory for rows of these input lengths, a dict of tensors), and
    `moves(lengths, memory)` (what every write of one call needs, computed once), and
    `write(memory, actions, value, moves)` -> the memory after the actions' mix, value (B, cell)
    being what the controller writes."""
    layout = "decoder"
    actions: tuple
    trace = None  # a list while explain() runs: (state, action probabilities) of row 0 at each token

    def __init__(self, cfg: Config):
        super().__init__()
        require(cfg.vocab_size > 0, "vocab_size comes from the run's codec")
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)  # also the controller's input weights and bias
        self.read = nn.Linear(cfg.cell, cfg.d_model, bias=False)
        self.rec = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.n_actions = len(self.actions)
        self.act = nn.Linear(cfg.d_model, self.n_actions + cfg.cell)  # the actions' logits, then the value written
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        # PyTorch's N(0, 1): the controller's input as strong as the paper's one-hot tokens through
        # a Linear. At the attention models' 0.02 the input is too faint to write the memory with
        # and nothing is learned in a minute (docs/defaults.md, memory architectures).

    def forward(self, tokens):
        """Logits (B, T, V) of the next token at every position."""
        return self.step(tokens, masked=False)[0]

    def step(self, tokens, state=None, masked=True):
        """Logits (B, T, V) of tokens that continue state, and the state after them. With no state
        the tokens are right-padded prompts (or whole sequences), and the input length of each
        row, which a tape's jumps need, is read from where its <sep> stands. The state is a dict
        of batch-first tensors: h (B, d_model), the memory's, and lengths (B,). masked=False
        (forward's) reads every <pad> as a token: right padding after all that is scored."""
        if state is None:
            seps = (tokens == SEP).int()
            lengths = torch.where(seps.any(1), seps.argmax(1) - 1, (tokens != PAD).sum(1) - 1).clamp(min=0)
            state = {"h": tokens.new_zeros(tokens.shape[0], self.cfg.d_model, dtype=self.emb.weight.dtype),
                     "lengths": lengths, **self.new(lengths)}
        h, memory = state["h"], {k: v for k, v in state.items() if k not in ("h", "lengths")}
        moves = self.moves(state["lengths"], memory)  # what the writes of this call share
        x, real = self.drop(self.emb(tokens)), tokens != PAD
        outs = []
        for t, x_t in enumerate(x.unbind(1)):  # unbind: one gradient for x, not one per token
            h_new = torch.tanh(x_t + self.read(self.read_cell(memory)) + self.rec(h))
            control = self.act(h_new)
            actions, value = control[:, : self.n_actions].softmax(-1), control[:, self.n_actions:]
            new = self.write(memory, actions, value, moves)
            if self.trace is not None:
                self.trace.append((h_new[0], actions[0]))
            if masked:  # a <pad> leaves the row as it was
                keep = real[:, t]
                h = torch.where(keep[:, None], h_new, h)
                memory = {k: torch.where(keep.view(-1, *[1] * (v.dim() - 1)), new[k], self.fit(v, new[k])) for k, v in memory.items()}
            else:  # forward(): whole right-padded sequences, whose padding comes after every position scored
                h, memory = h_new, new
            outs.append(h)
        out = torch.stack(outs, 1) if outs else h[:, None][:, :0]
        return self.head(self.drop(out)), {"h": h, "lengths": state["lengths"], **memory}

    def read_cell(self, memory):
        """The cell the controller reads: the first of the memory's `cells` (B, S, cell)."""
        return memory["cells"][:, 0]

    @staticmethod
    def fit(old, new):
        """old, padded with zero cells to new's shape (a stack that deepened for the other rows)."""
        if old.shape == new.shape:
            return old
        return torch.nn.functional.pad(old, (0, 0, 0, new.shape[1] - old.shape[1]))
