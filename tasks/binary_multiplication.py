"""Binary multiplication (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): multiply two
numbers written in binary, lowest bit first.

input:  `a*b`, drawn as binary_addition draws `a+b`; e.g. `001*01101` (4 * 22) (lengths
        min_len..max_len, at least 3)
target: the product, little-endian, without high zeros: 88 = `0001101`. The paper's
        termination token is <eos>.
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
import re
from dataclasses import dataclass

from errors import BadInput
from tasks.binary_addition import little_endian, operands
from tasks.common import ByLength, LengthOptions


@dataclass
class BinaryMultiplicationConfig(LengthOptions):
    pass


class BinaryMultiplication(ByLength):
    name = "binary_multiplication"
    Config = BinaryMultiplicationConfig
    level = "cs"
    shortest = 3

    def symbols(self) -> list[str]:
        return ["0", "1", "*"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text, a, b = operands(rng, length, "*")
        return text, little_endian(a * b)

    def longest_target(self, length: int) -> int:
        return length - 1

    def parse(self, text: str):
        if not re.fullmatch(r"[01]+\*[01]+", text):
            raise BadInput(f"{text!r} is not two binary numbers joined by *, lowest bit first, e.g. 001*01101")
