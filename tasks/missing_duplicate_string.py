"""Missing duplicate string (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): a binary
string written twice with one bit hidden; which bit is it?

input:  `ww` for a binary w of length // 2 bits, one bit of it replaced by `_`, then `#` when the
        length is odd; e.g. `0110_110` (lengths min_len..max_len, at least 2)
target: the hidden bit (here w = 0110: `0`)
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
import re
from dataclasses import dataclass

from errors import BadInput
from tasks.common import ByLength, LengthOptions


@dataclass
class MissingDuplicateStringConfig(LengthOptions):
    pass


class MissingDuplicateString(ByLength):
    name = "missing_duplicate_string"
    Config = MissingDuplicateStringConfig
    level = "cs"
    shortest = 2

    def symbols(self) -> list[str]:
        return ["0", "1", "_", "#"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        twice = "".join(rng.choices("01", k=length // 2)) * 2
        at = rng.randrange(len(twice))
        return twice[:at] + "_" + twice[at + 1:] + "#" * (length % 2), twice[at]

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        body = text.removesuffix("#")
        half = len(body) // 2
        if (len(text) - len(body)) != len(text) % 2 or len(body) % 2 or not re.fullmatch(r"[01]*_[01]*", body) \
                or any(a != b and "_" not in (a, b) for a, b in zip(body[:half], body[half:])):
            raise BadInput(f"{text!r} is not a binary string twice with one bit hidden by _ (and # when odd), e.g. 0110_110")
