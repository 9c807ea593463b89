"""Parity check (Chomsky hierarchy: regular; Deletang et al. 2023): is the number of 1s in a binary
string odd?

input:  a binary string, e.g. `1010100` (lengths min_len..max_len, each bit uniform)
target: `1` when it holds an odd number of 1s (here three), else `0`
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
from dataclasses import dataclass

from tasks.common import ByLength, LengthOptions, only


@dataclass
class ParityCheckConfig(LengthOptions):
    pass


class ParityCheck(ByLength):
    name = "parity_check"
    Config = ParityCheckConfig
    level = "regular"

    def symbols(self) -> list[str]:
        return ["0", "1"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = "".join(rng.choices("01", k=length))
        return text, str(text.count("1") % 2)

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        only(text, "01", "a binary string")
