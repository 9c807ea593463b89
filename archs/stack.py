"""Stack-RNN (Joulin and Mikolov 2015, as Deletang et al. 2023 use it, section A.2): an Elman RNN
controller with a differentiable stack (archs/memory.py has the controller and its loop).

The controller reads the stack's top cell with each token; then three actions are mixed by their
probabilities: push (the value the controller writes goes on top, every cell moves down one),
pop (the top goes, every cell moves up one) and no-op. The stack deepens by one cell per token,
so it never fills up, however long the input.
"""
import torch

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


class StackRNN(MemoryRNN):
    actions = ("push", "pop", "no-op")

    def new(self, lengths) -> dict:
        """An empty stack of one cell per row: cells (B, 1, cell)."""
        return {"cells": torch.zeros(len(lengths), 1, self.cfg.cell, device=lengths.device, dtype=self.emb.weight.dtype)}

    def moves(self, lengths, memory):
        """Nothing: the stack's moves are the same for every row."""
        return None

    def write(self, memory, actions, value, moves) -> dict:
        """The stack after the mix of push (value on top), pop and no-op, one cell deeper."""
        cells = torch.nn.functional.pad(memory["cells"], (0, 0, 0, 1))  # (B, S + 1, cell): room to push
        push, pop, stay = (actions[:, i, None, None] for i in range(3))
        pushed = torch.cat((value[:, None], cells[:, :-1]), 1)
        popped = torch.nn.functional.pad(cells[:, 1:], (0, 0, 0, 1))
        return {"cells": push * pushed + pop * popped + stay * cells}


Model = StackRNN
