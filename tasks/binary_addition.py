"""Binary addition (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): add two numbers
written in binary, lowest bit first.

input:  `a+b`, a and b little-endian binary (lowest bit first, so a number may end in zeros), of
        1 .. length - 2 bits for a and the rest for b, each a number from 1 to 2^bits - 1 drawn
        uniformly; e.g. `001+01101` (4 + 22) (lengths min_len..max_len, at least 3)
target: the sum, little-endian, without high zeros: 26 = `01011`. The paper's termination
        token is <eos>.
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
import re
from dataclasses import dataclass

from errors import BadInput
from tasks.common import ByLength, LengthOptions


@dataclass
class BinaryAdditionConfig(LengthOptions):
    pass


def little_endian(n: int, bits: int = 0) -> str:
    """n in binary, lowest bit first, padded with high zeros to `bits`."""
    return f"{n:b}".zfill(bits)[::-1]


def operands(rng, length: int, op: str) -> tuple[str, int, int]:
    """`a<op>b` of exactly length symbols (the paper's draw), and a and b."""
    bits_a = rng.randint(1, length - 2)
    bits_b = length - 1 - bits_a
    a, b = rng.randint(1, 2**bits_a - 1), rng.randint(1, 2**bits_b - 1)
    return little_endian(a, bits_a) + op + little_endian(b, bits_b), a, b


class BinaryAddition(ByLength):
    name = "binary_addition"
    Config = BinaryAdditionConfig
    level = "cs"
    shortest = 3

    def symbols(self) -> list[str]:
        return ["0", "1", "+"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text, a, b = operands(rng, length, "+")
        return text, little_endian(a + b)

    def longest_target(self, length: int) -> int:
        return length - 1

    def parse(self, text: str):
        if not re.fullmatch(r"[01]+\+[01]+", text):
            raise BadInput(f"{text!r} is not two binary numbers joined by +, lowest bit first, e.g. 001+01101")
