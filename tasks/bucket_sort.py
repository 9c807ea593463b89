"""Bucket sort (Chomsky hierarchy: context-sensitive; Deletang et al. 2023): sort a string over five
symbols.

input:  a string over 0-4, e.g. `10204112` (lengths min_len..max_len, each symbol uniform)
target: its symbols in increasing order, `00111224`
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
from dataclasses import dataclass

from tasks.common import ByLength, LengthOptions, only


@dataclass
class BucketSortConfig(LengthOptions):
    pass


class BucketSort(ByLength):
    name = "bucket_sort"
    Config = BucketSortConfig
    level = "cs"

    def symbols(self) -> list[str]:
        return [*"01234"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = "".join(rng.choices("01234", k=length))
        return text, "".join(sorted(text))

    def longest_target(self, length: int) -> int:
        return length

    def parse(self, text: str):
        only(text, "01234", "a string over the symbols 0-4")
