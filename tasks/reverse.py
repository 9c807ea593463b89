"""String reversal: write the input backwards (the Chomsky hierarchy's context-free level: a
model has to keep the whole input, as a stack does, and give it back last symbol first).

input:  a string over `alphabet`, e.g. `abccd` (length min_len..max_len, each symbol uniform)
target: the same string reversed, `dccba`
meta:   length (input length)
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
import random
from dataclasses import dataclass

import torch

from errors import DataError
from tasks.common import Axis, Example, Task, Traits, option


@dataclass
class ReverseConfig:
    alphabet: str = option("abcd", "the symbols strings are made of")
    min_len: int = option(1, "shortest input")
    max_len: int = option(20, "longest input")
    ood_min_len: int = option(21, "shortest OOD input")
    ood_max_len: int = option(40, "longest OOD input")


class Reverse(Task):
    name = "reverse"
    Config = ReverseConfig
    breakdowns = {"length": 10}

    def __init__(self, cfg: ReverseConfig):
        if not cfg.alphabet or len(set(cfg.alphabet)) != len(cfg.alphabet) or any(c.isspace() for c in cfg.alphabet):
            raise DataError("reverse alphabet must be distinct symbols other than spaces, e.g. 'abcd'")
        if not 1 <= cfg.min_len <= cfg.max_len or not 1 <= cfg.ood_min_len <= cfg.ood_max_len:
            raise DataError("reverse lengths need 1 <= min_len <= max_len and 1 <= ood_min_len <= ood_max_len")
        super().__init__(cfg)

    def symbols(self) -> list[str]:
        return list(self.cfg.alphabet)

    def traits(self) -> Traits:
        return Traits(level="dcf")  # the benchmark's reverse_string: this task with --alphabet 01

    def max_input_len(self) -> int:
        return max(self.cfg.max_len, self.cfg.ood_max_len)

    def max_target_len(self) -> int:
        return self.max_input_len()

    def axis(self) -> Axis:
        return Axis("length", "input length", self.cfg.max_len, 1000)

    def sample(self, gen: torch.Generator, n: int, ood: bool = False) -> list[Example]:
        return self._strings(gen, n, *((self.cfg.ood_min_len, self.cfg.ood_max_len) if ood else (self.cfg.min_len, self.cfg.max_len)))

    def sample_at(self, gen: torch.Generator, n: int, value: int) -> list[Example]:
        return self._strings(gen, n, value, value)

    def _strings(self, gen, n, lo, hi) -> list[Example]:
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        out = []
        for _ in range(n):
            text = "".join(rng.choices(self.cfg.alphabet, k=rng.randint(lo, hi)))
            out.append(Example(text, text[::-1], {"length": len(text)}))
        return out

    def check(self, text: str) -> list[str]:
        if not self.cfg.min_len <= len(text) <= self.cfg.max_len:
            return [f"length {len(text)} is outside the {self.cfg.min_len}..{self.cfg.max_len} it was trained on"]
        return []
