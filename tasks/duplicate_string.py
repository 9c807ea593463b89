"""Duplicate string (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): write a binary
string twice.

input:  a binary string, e.g. `101` (lengths min_len..max_len, each bit uniform)
target: the string twice, `101101`
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
from dataclasses import dataclass

from tasks.common import ByLength, LengthOptions, only


@dataclass
class DuplicateStringConfig(LengthOptions):
    pass


class DuplicateString(ByLength):
    name = "duplicate_string"
    Config = DuplicateStringConfig
    level = "cs"

    def symbols(self) -> list[str]:
        return ["0", "1"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = "".join(rng.choices("01", k=length))
        return text, text + text

    def longest_target(self, length: int) -> int:
        return 2 * length

    def parse(self, text: str):
        only(text, "01", "a binary string")
