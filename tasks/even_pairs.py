"""Even pairs (Chomsky hierarchy: regular; Deletang et al. 2023): is the number of unequal
neighbours (`01` or `10`) in a binary string even?

input:  a binary string, e.g. `001110` (lengths min_len..max_len, each bit uniform)
target: `0` when the `01` and `10` pairs are even in number (here one of each: `0`), else `1`
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
from dataclasses import dataclass

from tasks.common import ByLength, LengthOptions, only


@dataclass
class EvenPairsConfig(LengthOptions):
    pass


class EvenPairs(ByLength):
    name = "even_pairs"
    Config = EvenPairsConfig
    level = "regular"

    def symbols(self) -> list[str]:
        return ["0", "1"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = "".join(rng.choices("01", k=length))
        return text, str(sum(a != b for a, b in zip(text, text[1:])) % 2)

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        only(text, "01", "a binary string")
