"""Tape-RNN (Deletang et al. 2023, section A.2): an Elman RNN controller with a differentiable tape
(archs/memory.py has the controller and its loop).

The controller reads the cell under the head with each token, writes a value there (through a
small MLP), then moves by a mix of five actions weighted by their probabilities: stay, one cell
left, one cell right, and jumps of the input's length left or right (the jumps that let it find
the start of what it wrote, for duplicate_string or odds_first). The tape is a ring of
4 x (input length + 2) cells for each problem, room for every answer the tasks ask (at most
twice the input) on either side of the head; it does not depend on the rest of the batch.
"""
import torch
import torch.nn as nn

from archs.memory import (  # noqa: F401 -- what archs.Arch declares, shared with the tape (stack) or stack (tape)
    EXPORT,
    GROWN_BY_TASK,
    LORA_TARGETS,
    TRAIN_DEFAULTS,
    Config,
    MemoryRNN,
    explain,
    search_space,
    task_defaults,
    task_train_defaults,
)


def ring_size(lengths):
    """The cells of a problem's tape: 4 x (input length + 2)."""
    return 4 * (lengths + 2)


class TapeRNN(MemoryRNN):
    actions = ("write and stay", "left", "right", "jump left", "jump right")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.value = nn.Sequential(nn.Linear(cfg.cell, 64), nn.ReLU(), nn.Linear(64, cfg.cell))  # the paper's write MLP

    def new(self, lengths) -> dict:
        """An empty tape per row: cells (B, largest ring, cell)."""
        return {"cells": torch.zeros(len(lengths), int(ring_size(lengths).max()), self.cfg.cell, device=lengths.device,
                                     dtype=self.emb.weight.dtype)}

    def moves(self, lengths, memory):
        """Where each cell of a turned tape comes from, for the four moves (left, right, jumps of the
        input's length left and right), as rows of the tape flattened (B * S, cell): (4, B, S). A
        row's ring is its first ring_size cells, turned so that cell i takes what was at i - turn
        (mod the ring); a cell past the ring takes itself, and stays empty."""
        B, S, _ = memory["cells"].shape
        one, ring = torch.ones_like(lengths), ring_size(lengths)[:, None]
        turns = torch.stack((-one, one, -lengths, lengths))[..., None]  # (4, B, 1)
        i = torch.arange(S, device=lengths.device)
        source = torch.where(i < ring, (i - turns) % ring, i)  # (4, B, S)
        return source + torch.arange(B, device=lengths.device)[:, None] * S

    def write(self, memory, actions, value, moves) -> dict:
        """The tape after writing under the head and moving by the mix of the five actions."""
        written = torch.cat((self.value(value)[:, None], memory["cells"][:, 1:]), 1)
        moved = written.flatten(0, 1).index_select(0, moves.flatten()).view(*moves.shape, -1)  # (4, B, S, cell)
        return {"cells": actions[:, 0, None, None] * written + torch.einsum("bk,kbsc->bsc", actions[:, 1:], moved)}


Model = TapeRNN
