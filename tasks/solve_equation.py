"""Solve equation (Chomsky hierarchy: deterministic context-free; Deletang et al. 2023): the digit x
stands for in a bracketed equation modulo 5.

input:  `E=v`: E an expression of modular_arithmetic_brackets with + and - only (with * an
        equation could have several solutions, as the repository's code says) and one digit
        replaced by `x`, v its value modulo 5; e.g. `((x+-3)+(4))=3` (lengths min_len..max_len,
        at least 3)
target: the digit x stands for (here x - 3 + 4 = 3: `2`)
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
from dataclasses import dataclass

from errors import BadInput
from tasks.common import ByLength, LengthOptions
from tasks.modular_arithmetic_brackets import DIGITS, evaluate, expression


@dataclass
class SolveEquationConfig(LengthOptions):
    pass


class SolveEquation(ByLength):
    name = "solve_equation"
    Config = SolveEquationConfig
    level = "dcf"
    shortest = 3

    def symbols(self) -> list[str]:
        return [*DIGITS, "+", "-", "(", ")", "x", "="]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = expression(rng, length - 2, ops="+-")
        at = rng.choice([i for i, c in enumerate(text) if c in DIGITS])
        return f"{text[:at]}x{text[at + 1:]}={evaluate(text)}", text[at]

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        left, eq, right = text.partition("=")
        if not eq or left.count("x") != 1 or right not in DIGITS or not right or "*" in left:
            raise BadInput(f"{text!r} is not an equation E=v with one x, + and - only, e.g. ((x+-3)+(4))=3")
        if not any(evaluate(left, x) == int(right) for x in range(5)):
            raise BadInput(f"{text!r} has no solution")
