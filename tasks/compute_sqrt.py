"""Compute sqrt (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): the integer square
root of a number written in binary, lowest bit first.

input:  a number from 1 to 2^length - 1 drawn uniformly, in `length` bits, little-endian (lowest
        bit first), e.g. `101001` (37) (lengths min_len..max_len)
target: its integer square root in ceil(length / 2) bits, little-endian: 6 = `011`
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
The paper writes both numbers little-endian; the repository's code writes them big-endian. This
follows the paper.
"""
import math
from dataclasses import dataclass

from tasks.binary_addition import little_endian
from tasks.common import ByLength, LengthOptions, only


@dataclass
class ComputeSqrtConfig(LengthOptions):
    pass


class ComputeSqrt(ByLength):
    name = "compute_sqrt"
    Config = ComputeSqrtConfig
    level = "cs"

    def symbols(self) -> list[str]:
        return ["0", "1"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        n = rng.randint(1, 2**length - 1)
        return little_endian(n, length), little_endian(math.isqrt(n), math.ceil(length / 2))

    def longest_target(self, length: int) -> int:
        return math.ceil(length / 2)

    def parse(self, text: str):
        only(text, "01", "a binary number (lowest bit first)")
