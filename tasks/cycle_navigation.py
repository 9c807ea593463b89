"""Cycle navigation (Chomsky hierarchy: regular; Deletang et al. 2023): where on a cycle of five
states does a walk end that starts at state 0?

input:  moves, each `0` (stay), `1` (one state forward) or `2` (one state back), e.g. `1202`
        (lengths min_len..max_len, each move uniform)
target: the final state, `0` to `4` (here 1 - 1 - 1 = -1: `4`)
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
The paper's moves: 0 stays, 1 goes forward, 2 goes back. The repository's code reads them as
-1, 0, +1 instead; this follows the paper.
"""
from dataclasses import dataclass

from tasks.common import ByLength, LengthOptions, only

STATES = 5
MOVE = {"0": 0, "1": 1, "2": -1}


@dataclass
class CycleNavigationConfig(LengthOptions):
    pass


class CycleNavigation(ByLength):
    name = "cycle_navigation"
    Config = CycleNavigationConfig
    level = "regular"

    def symbols(self) -> list[str]:
        return [str(s) for s in range(STATES)]

    def problem(self, rng, length: int) -> tuple[str, str]:
        text = "".join(rng.choices("012", k=length))
        return text, str(sum(MOVE[m] for m in text) % STATES)

    def longest_target(self, length: int) -> int:
        return 1

    def parse(self, text: str):
        only(text, "012", "a string of moves 0 (stay), 1 (forward), 2 (back)")
