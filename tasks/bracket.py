"""Bracket closing: close the brackets that an input prefix leaves open.

input:  a prefix that never closes a bracket wrongly, e.g. `【()】{{(`   (length min_len..max_len,
        nesting never deeper than max_depth; at each step a bracket opens or closes with equal
        chance where both are allowed, the opener's kind uniform over `kinds`)
target: exactly the closers for what is still open, innermost first, e.g. `)}}`; empty when
        everything is closed.
meta:   length (input length), depth (open brackets at the end = closers needed),
        max_depth (deepest nesting reached).
OOD:    the same with input lengths ood_min_len..ood_max_len and the same depth limit.
"""
import random
from dataclasses import dataclass

import torch

from errors import BadInput, DataError
from tasks.common import Axis, Example, Task, Traits, option


@dataclass
class BracketConfig:
    min_len: int = option(1, "shortest input")
    max_len: int = option(30, "longest input")
    max_depth: int = option(10, "deepest nesting")
    kinds: str = option("()【】{}[]", "opener/closer pairs")
    ood_min_len: int = option(31, "shortest OOD input")
    ood_max_len: int = option(60, "longest OOD input")


class Bracket(Task):
    name = "bracket"
    Config = BracketConfig
    breakdowns = {"length": 10, "depth": 1}

    def __init__(self, cfg: BracketConfig):
        if len(cfg.kinds) % 2 or not cfg.kinds or len(set(cfg.kinds)) != len(cfg.kinds):
            raise DataError("bracket kinds must be distinct pairs of opener and closer, e.g. '()[]'")
        if not 1 <= cfg.min_len <= cfg.max_len or cfg.max_depth < 1:
            raise DataError("bracket lengths need 1 <= min_len <= max_len and max_depth >= 1")
        if not 1 <= cfg.ood_min_len <= cfg.ood_max_len:
            raise DataError("bracket OOD lengths need 1 <= ood_min_len <= ood_max_len")
        self.cfg = cfg
        self.pairs = [(cfg.kinds[i], cfg.kinds[i + 1]) for i in range(0, len(cfg.kinds), 2)]
        self.closer = dict(self.pairs)

    def symbols(self) -> list[str]:
        return list(self.cfg.kinds)

    def max_target_len(self) -> int:
        return self.cfg.max_depth

    def traits(self) -> Traits:
        return Traits(nested=True, level="dcf")  # completing a Dyck word

    def max_input_len(self) -> int:
        """The longest input of any split (the OOD split's)."""
        return max(self.cfg.max_len, self.cfg.ood_max_len)

    def axis(self) -> Axis:
        return Axis("length", "input length", self.cfg.max_len, 1000)

    def sample(self, gen: torch.Generator, n: int, ood: bool = False) -> list[Example]:
        return self._prefixes(gen, n, *((self.cfg.ood_min_len, self.cfg.ood_max_len) if ood else (self.cfg.min_len, self.cfg.max_len)))

    def sample_at(self, gen: torch.Generator, n: int, value: int) -> list[Example]:
        return self._prefixes(gen, n, value, value)

    def _prefixes(self, gen, n, lo, hi) -> list[Example]:
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        out = []
        for _ in range(n):
            length, stack, chars, deepest = rng.randint(lo, hi), [], [], 0
            for _ in range(length):
                can_open, can_close = len(stack) < self.cfg.max_depth, bool(stack)
                if can_open and (not can_close or rng.random() < 0.5):
                    opener, closer = rng.choice(self.pairs)
                    stack.append(closer)
                    chars.append(opener)
                    deepest = max(deepest, len(stack))
                else:
                    chars.append(stack.pop())
            target = "".join(reversed(stack))
            out.append(Example("".join(chars), target, {"length": length, "depth": len(stack), "max_depth": deepest}))
        return out

    # ------------------------------------------------------------------ what people type
    # normalize (Task's): spaces removed, full-width brackets typed with an IME, `（`, become `(`.

    def check(self, text: str) -> list[str]:
        """Warnings for an input outside what the task trains on; BadInput if no answer exists
        (a bracket closed wrongly). Symbols the codec lacks are the codec's to report."""
        stack, deepest = [], 0
        for i, c in enumerate(text, 1):
            if c in self.closer:
                stack.append(self.closer[c])
                deepest = max(deepest, len(stack))
            elif c in self.closer.values():
                if not stack or stack[-1] != c:
                    expected = f"{stack[-1]!r} is expected" if stack else "nothing is open"
                    raise BadInput(f"{text!r} closes wrongly at position {i}: {c!r} where {expected}")
                stack.pop()
        warnings = []
        if not self.cfg.min_len <= len(text) <= self.cfg.max_len:
            warnings.append(f"length {len(text)} is outside the {self.cfg.min_len}..{self.cfg.max_len} it was trained on")
        if deepest > self.cfg.max_depth:
            warnings.append(f"nesting depth {deepest} is deeper than the {self.cfg.max_depth} it was trained on")
        return warnings
