"""What every task shares: the example type, the Task interface, the Axis of its accuracy curves,
the Traits architectures may tailor their defaults to, and the `option` field that declares a
task's option once (the scripts build their flags from it). The errors a task raises are
errors.DataError (bad options) and errors.BadInput (a typed problem it cannot take)."""
import random
import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import MISSING, dataclass, field, fields

import torch

from errors import BadInput, DataError


@dataclass
class Example:
    input: str
    target: str
    meta: dict


def option(default, help: str, choices=None):
    """A task option: a Config field whose default, help and choices become the command-line flag
    `--name` of dataset.py, train.py, hyper.py and python -m bench (dataset.add_data_args)."""
    return field(default=default, metadata={"help": help, "choices": choices})


def options_of(config_cls) -> list:
    """The option fields of a task's Config, each with .name, .type, .default and .metadata."""
    out = []
    for f in fields(config_cls):
        if f.default is MISSING or "help" not in f.metadata:
            raise TypeError(f"{config_cls.__name__}.{f.name} must be declared with tasks.common.option(default, help)")
        out.append(f)
    return out


@dataclass(frozen=True)
class Axis:
    """What an accuracy curve varies (evaluate.py --curve): a property of every problem, `name`
    (by_<name>.csv), `label` as plots and tables say it ("input length", "digits of the longer
    operand"); `trained` is the largest value training draws, `limit` the largest the task can
    make. Curves run from 1 to 4 x trained, up to limit."""
    name: str
    label: str
    trained: int
    limit: int

    def values(self) -> list[int]:
        return list(range(1, min(4 * self.trained, self.limit) + 1))


def group_of(value, width: int) -> str:
    """The breakdown group of a meta value: whole numbers in runs of width (`01-10`, `11-20` for
    width 10), anything else as itself."""
    if width > 1 and isinstance(value, int) and not isinstance(value, bool):
        lo = (value - 1) // width * width + 1
        return f"{lo:02d}-{lo + width - 1:02d}"
    return str(value)


def group_order(group: str):
    """Sort key of breakdown groups: by the numbers in them (`61-70` before `101-110`, `2x1`
    before `10x1`), then as text."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", group)]


@dataclass(frozen=True)
class Traits:
    """What an architecture may tailor its defaults to (archs/*.py task_defaults), so that models
    never read a task's options. Each trait is a property of the problems, not of a task's name."""
    nested: bool = False         # answers close what the input left open (a stack: bracket closing)
    multiplies: bool = False     # answers need partial products (* or /): deeper models, weight decay
    digit_aligned: bool = False  # answers are written digit by digit from the lowest place, each digit
                                 # reading the operands' digits of its place (+ and - reversed)
    level: str = ""              # its level in the Chomsky hierarchy (Deletang et al. 2023): "regular",
                                 # "dcf" (deterministic context-free) or "cs" (context-sensitive); "" unclassified


class Task(ABC):
    """A task: its options (`Config`, a dataclass of `option` fields), its symbols, how it samples
    examples (input, target, meta for the breakdowns named in `breakdowns`), how it reads what
    people type, what it shows beside an answer (`extras`), and the `traits` architectures may
    tailor their defaults to. Adding a task is one file in tasks/ with one subclass (README:
    Adding a task); tasks/__init__.py finds it."""
    name: str
    Config: type
    breakdowns: dict[str, int] = {}  # meta key -> width of its groups (group_of): evaluate.py's tables
    extras: dict[str, str] = {}      # keys present() may add beside "answer" -> how people read them ("LaTeX")

    def __init__(self, cfg):
        self.cfg = cfg

    @abstractmethod
    def symbols(self) -> list[str]:
        """The task's symbols in id order: the codec's tokens after the specials (codec.py)."""

    @abstractmethod
    def sample(self, gen, n: int, ood: bool = False) -> list[Example]:
        """n examples drawn from the seeded torch.Generator gen: the training distribution, or
        with ood the out-of-distribution one (longer inputs, more digits)."""

    @abstractmethod
    def axis(self) -> Axis:
        """The quantity accuracy curves vary (Axis)."""

    @abstractmethod
    def sample_at(self, gen, n: int, value: int) -> list[Example]:
        """n examples drawn from gen whose axis value is exactly value (any value from 1 to the
        axis' limit, inside the training range or beyond it); otherwise drawn as in training."""

    def axis_value(self, example: Example) -> int:
        """An example's value on the axis: by default its meta entry of the axis' name."""
        return example.meta[self.axis().name]

    @abstractmethod
    def max_input_len(self) -> int:
        """The longest input of any split, OOD included, in symbols."""

    @abstractmethod
    def max_target_len(self) -> int:
        """The longest target of any split, OOD included, in symbols."""

    @abstractmethod
    def check(self, text: str) -> list[str]:
        """Warnings for a (normalised) input outside what the task trains on; BadInput when it
        is no problem of the task. Symbols the codec lacks are the codec's to report."""

    def traits(self) -> Traits:
        return Traits()

    def normalize(self, text: str) -> str:
        """What people type, in the task's form: by default spaces removed and full-width
        characters folded to their ASCII twins, except the task's own symbols."""
        return fold(text, set(self.symbols()))

    def scored(self, output: str) -> str:
        """The part of an answer that exact match compares: by default all of it."""
        return output

    def present(self, text: str, output: str) -> dict:
        """The model's output as shown to people: {"answer": ...} and any of `extras`."""
        return {"answer": output}


def fold(text: str, keep) -> str:
    """What people type, in plain characters: full-width and other compatibility forms become
    their ASCII twins (NFKC), except the symbols in keep; whitespace goes."""
    return "".join(c if c in keep else unicodedata.normalize("NFKC", c) for c in text if not c.isspace())


# ----------------------------------------------------------------------------- tasks drawn by length

LEVELS = ("regular", "dcf", "cs")


@dataclass
class LengthOptions:
    """The options of a task drawn by input length, as the Chomsky-hierarchy benchmark draws its
    problems: training lengths uniform in min_len..max_len, the OOD split's in ood_min_len..ood_max_len
    (the paper's 1..40 and 41..500). A task adds its own options after these."""
    min_len: int = option(1, "shortest input")
    max_len: int = option(40, "longest input")
    ood_min_len: int = option(41, "shortest OOD input")
    ood_max_len: int = option(500, "longest OOD input")


class ByLength(Task):
    """A task whose problems are drawn by their input length (the Chomsky-hierarchy tasks,
    tasks/<name>.py): a subclass gives its `level`, `symbols()`, `problem(rng, length)` (an input of
    exactly that length and its target, from a random.Random), `longest_target(length)` and
    `parse(text)` (BadInput for text that is no problem of the task). Lengths below `shortest`
    have no problem (binary_addition needs `a+b`: 3)."""
    level: str
    shortest: int = 1
    breakdowns = {"length": 10}

    def __init__(self, cfg):
        if not 1 <= cfg.min_len <= cfg.max_len or not 1 <= cfg.ood_min_len <= cfg.ood_max_len:
            raise DataError(f"{self.name} lengths need 1 <= min_len <= max_len and 1 <= ood_min_len <= ood_max_len")
        if max(cfg.max_len, cfg.ood_max_len) < self.shortest:
            raise DataError(f"{self.name} has no problem shorter than {self.shortest}")
        super().__init__(cfg)

    @abstractmethod
    def problem(self, rng, length: int) -> tuple[str, str]:
        """An input of exactly `length` symbols (>= shortest) and its target."""

    @abstractmethod
    def longest_target(self, length: int) -> int:
        """The longest target of an input of `length` symbols."""

    @abstractmethod
    def parse(self, text: str):
        """BadInput when text is no problem of the task (symbols the codec lacks are the codec's)."""

    def traits(self) -> Traits:
        return Traits(level=self.level)

    def lengths(self, ood: bool = False) -> tuple[int, int]:
        """The shortest and longest input of the training (or OOD) split."""
        lo, hi = (self.cfg.ood_min_len, self.cfg.ood_max_len) if ood else (self.cfg.min_len, self.cfg.max_len)
        return max(lo, self.shortest), max(hi, self.shortest)

    def axis(self) -> Axis:
        return Axis("length", "input length", self.lengths()[1], 4096)

    def max_input_len(self) -> int:
        return max(self.lengths()[1], self.lengths(ood=True)[1])

    def max_target_len(self) -> int:
        return self.longest_target(self.max_input_len())

    def sample(self, gen, n: int, ood: bool = False) -> list[Example]:
        lo, hi = self.lengths(ood)
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        return [self.example(rng, rng.randint(lo, hi)) for _ in range(n)]

    def sample_at(self, gen, n: int, value: int) -> list[Example]:
        if value < self.shortest:
            return []
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        return [self.example(rng, value) for _ in range(n)]

    def example(self, rng, length: int) -> Example:
        text, target = self.problem(rng, length)
        return Example(text, target, {"length": len(text)})

    def check(self, text: str) -> list[str]:
        self.parse(text)
        lo, hi = self.lengths()
        if not lo <= len(text) <= hi:
            return [f"length {len(text)} is outside the {lo}..{hi} it was trained on"]
        return []


def only(text: str, alphabet: str, what: str):
    """BadInput unless text is a non-empty string over alphabet (what: how the task names its inputs)."""
    if not text or set(text) - set(alphabet):
        raise BadInput(f"{text!r} is not {what}")
