"""Modular arithmetic with brackets (Chomsky hierarchy: deterministic context-free; Deletang et al.
2023): the value modulo 5 of a bracketed expression of digits 0-4 and + - *.

input:  an expression of exactly the length drawn, as the paper's generator makes it: length 1
        a digit `d`, 2 `-d`, 3 `(d)`, 4 `(-d)`, longer `(A op B)` with A and B expressions whose
        lengths split the rest at random and op one of + - * (the benchmark's setting mult=True);
        e.g. `((2*-3)+(4))` (lengths min_len..max_len)
target: its value modulo 5, `0` to `4` (here -6 + 4 = -2: `3`)
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
from dataclasses import dataclass

from errors import BadInput
from tasks.common import ByLength, LengthOptions

MODULUS = 5
DIGITS = "01234"


@dataclass
class ModularArithmeticBracketsConfig(LengthOptions):
    pass


def expression(rng, length: int, ops: str = "+-*") -> str:
    """A bracketed expression of exactly length symbols (the paper's generator)."""
    if length <= 4:
        d = rng.choice(DIGITS)
        return [d, f"-{d}", f"({d})", f"(-{d})"][length - 1]
    left = rng.randint(1, length - 4)
    return f"({expression(rng, left, ops)}{rng.choice(ops)}{expression(rng, length - 3 - left, ops)})"


def evaluate(text: str, x: int | None = None) -> int:
    """The value modulo 5 of an expression of expression()'s grammar (an `x` standing for the
    digit x); BadInput for text outside it."""
    def term(i):  # -> (value, next index)
        if i < len(text) and text[i] in DIGITS + "x":
            return (x if text[i] == "x" else int(text[i])), i + 1
        if i < len(text) and text[i] == "-":
            v, j = term(i + 1)
            return -v, j
        if i < len(text) and text[i] == "(":
            v, j = term(i + 1)
            if j < len(text) and text[j] in "+-*":
                w, k = term(j + 1)
                v, j = {"+": v + w, "-": v - w, "*": v * w}[text[j]], k
            if j < len(text) and text[j] == ")":
                return v, j + 1
        raise BadInput(f"{text!r} is not a bracketed expression of digits 0-4 and + - *, e.g. ((2*-3)+(4))")
    if "x" in text and x is None:
        raise BadInput(f"{text!r} has an unknown x")
    v, end = term(0)
    if end != len(text):
        raise BadInput(f"{text!r} is not a bracketed expression of digits 0-4 and + - *, e.g. ((2*-3)+(4))")
    return v % MODULUS


class ModularArithmeticBrackets(ByLength):
    name = "modular_arithmetic_brackets"
    Config = ModularArithmeticBracketsConfig
    level = "dcf"

    def symbols(self) -> list[str]:
        return [*DIGITS, "+", "-", "*", "(", ")"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = expression(rng, length)
        return text, str(evaluate(text))

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        evaluate(text)
