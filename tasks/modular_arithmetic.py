"""Modular arithmetic (Chomsky hierarchy: regular; Deletang et al. 2023): the value modulo 5 of an
expression of digits 0-4 and + - * without brackets, * before + and -.

input:  `digit (op digit)*`, e.g. `0*1+4*3-2` (lengths min_len..max_len, odd; digits and
        operators uniform)
target: its value modulo 5, `0` to `4` (here 0 + 12 - 2 = 10: `0`)
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
An expression has odd length: an even length drawn becomes one longer, as the paper says (the
repository's code makes it one shorter), so no problem has an even length.
"""
import re
from dataclasses import dataclass

from errors import BadInput
from tasks.common import ByLength, LengthOptions

MODULUS = 5
EXPRESSION = re.compile(r"[0-4]([-+*][0-4])*")


@dataclass
class ModularArithmeticConfig(LengthOptions):
    pass


def value(text: str) -> int:
    """An expression's value modulo 5, * before + and -."""
    total, sign, term = 0, 1, int(text[0])
    for op, digit in zip(text[1::2], text[2::2]):
        if op == "*":
            term *= int(digit)
        else:
            total, sign, term = total + sign * term, 1 if op == "+" else -1, int(digit)
    return (total + sign * term) % MODULUS


class ModularArithmetic(ByLength):
    name = "modular_arithmetic"
    Config = ModularArithmeticConfig
    level = "regular"

    def symbols(self) -> list[str]:
        return [*"01234", "+", "-", "*"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        length += 1 - length % 2
        text = "".join(rng.choice("01234") if i % 2 == 0 else rng.choice("+-*") for i in range(length))
        return text, str(value(text))

    def sample_at(self, gen, n: int, value: int):
        return [] if value % 2 == 0 else super().sample_at(gen, n, value)

    def lengths(self, ood: bool = False) -> tuple[int, int]:
        """A split's lengths, each made odd (one longer) as the paper makes them."""
        lo, hi = super().lengths(ood)
        return lo + 1 - lo % 2, hi + 1 - hi % 2

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        if not EXPRESSION.fullmatch(text):
            raise BadInput(f"{text!r} is not an expression of digits 0-4 joined by + - *, e.g. 1+2*3")
