"""Odds first (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): write the symbols at
odd positions of a binary string first, then those at even positions.

input:  a binary string s1 s2 s3 ..., e.g. `00110101` (lengths min_len..max_len, each bit uniform)
target: s1 s3 s5 ... s2 s4 s6 ..., here `0100` then `0111`: `01000111`
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
The paper puts the odd positions (counted from 1) first; the repository's code writes s2 s4 ...
first. This follows the paper.
"""
from dataclasses import dataclass

from tasks.common import ByLength, LengthOptions, only


@dataclass
class OddsFirstConfig(LengthOptions):
    pass


class OddsFirst(ByLength):
    name = "odds_first"
    Config = OddsFirstConfig
    level = "cs"

    def symbols(self) -> list[str]:
        return ["0", "1"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = "".join(rng.choices("01", k=length))
        return text, text[0::2] + text[1::2]

    def longest_target(self, length: int) -> int:
        return length

    def parse(self, text: str):
        only(text, "01", "a binary string")
