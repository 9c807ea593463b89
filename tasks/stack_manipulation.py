"""Stack manipulation (Chomsky hierarchy: deterministic context-free; Deletang et al. 2023): run
POP and PUSH instructions on a stack of bits and write what is left on it, top first.

input:  a stack given bottom to top, then instructions: `-` POP (ignored on an empty stack),
        `o` PUSH 0, `i` PUSH 1; e.g. `0110i--` (stack 0110, push 1, pop, pop); the stack holds
        1 .. length - 1 bits, the rest are instructions (lengths min_len..max_len; a length-1
        input is a stack of one bit)
target: the final stack, top to bottom (here 011 -> `110`); empty when nothing is left. The
        paper's termination token is <eos>.
meta:   length
OOD:    the same with lengths ood_min_len..ood_max_len.
"""
import re
from dataclasses import dataclass

from errors import BadInput
from tasks.common import ByLength, LengthOptions

PROGRAM = re.compile(r"[01]+[-oi]*")


@dataclass
class StackManipulationConfig(LengthOptions):
    pass


def run(text: str) -> str:
    """The stack a program leaves, top to bottom."""
    stack = []
    for c in text:
        if c == "-":
            if stack:
                stack.pop()
        else:
            stack.append({"o": "0", "i": "1"}.get(c, c))
    return "".join(reversed(stack))


class StackManipulation(ByLength):
    name = "stack_manipulation"
    Config = StackManipulationConfig
    level = "dcf"

    def symbols(self) -> list[str]:
        return ["0", "1", "-", "o", "i"]

    def problem(self, rng, length: int) -> tuple[str, str]:
        bits = length if length == 1 else rng.randint(1, length - 1)
        text = "".join(rng.choices("01", k=bits)) + "".join(rng.choices("-oi", k=length - bits))
        return text, run(text)

    def longest_target(self, length: int) -> int:
        return length

    def parse(self, text: str):
        if not PROGRAM.fullmatch(text):
            raise BadInput(f"{text!r} is not a stack of bits followed by instructions - (pop), o (push 0), i (push 1)")
