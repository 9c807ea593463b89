"""Two-operand arithmetic: + - * /.

operands: each has 1..digits digits (the digit count uniform, so one- and two-digit operands
          come in every combination); with `negatives` each is negative with chance 1/4, with
          `decimals` each has one decimal place with chance 1/4 (`4.7` counts two digits,
          `0.5` one: a lone leading zero is not counted; the tenths digit is never 0).
          Division is drawn so that the quotient is exact with at most two decimal places
          and the divisor is never zero.
input:    `12*3`, `7/2`, `-4.5+(-3)` (a negative second operand is parenthesised).
target:   the exact result, shortest decimal form: `36`, `3.5`, `-7.5`.
          format=reversed writes the result's characters backwards (`63`, `5.3`, `5.7-`),
          which lets a left-to-right model produce the low digits first.
          format=latex writes the whole equation: `12 \\times 3 = 36`, `\\frac{7}{2} = 3.5`.
          format=scratch is reversed with a scratch pad for `*`: the partial products of the
          operands' digits (point and sign left out), one per digit of the second operand, each
          reversed and shifted to its place, then `=` and the reversed result:
          `47*23` -> `141+049=1801` (47*3 = 141, 47*20 = 940), `-4.7*2.3` -> `141+049=18.01-`,
          `6*58` -> `84+003=843` (6*8 = 48, 6*50 = 300). A quotient is written in the natural
          order, highest digit first, as long division finds it: `7/2` -> `3.5`.
          Exact match scores the result after the last `=` (`scored`).
meta:     op, digits (`2x1`: digits of each operand), negative, decimal.
OOD:      the longer operand has ood_min_digits..ood_max_digits digits (default both digits+1),
          the other 1 up to as many.
"""
import random
import re
from dataclasses import dataclass
from fractions import Fraction

import torch

from errors import BadInput, DataError
from tasks.common import Axis, Example, Task, Traits, fold, option

FORMATS = ("plain", "reversed", "latex", "scratch")
MAX_DIGITS = 12  # the most digits an operand of any split (or accuracy curve) may have
NUMBER = r"\d+(?:\.\d+)?"
PROBLEM = re.compile(rf"(-?{NUMBER})([-+*/])(\(-{NUMBER}\)|{NUMBER})")
TYPED = re.compile(rf"\(?(-?{NUMBER})\)?([-+*/])\(?(-?{NUMBER})\)?")
SIGNS = str.maketrans({"×": "*", "÷": "/", "−": "-", "–": "-", "—": "-", "·": "*", "∗": "*", "∕": "/"})


@dataclass
class ArithConfig:
    ops: str = option("+-*/", "operations, a subset of '+-*/'")
    digits: int = option(2, "most digits per operand")
    negatives: bool = option(False, "include negative operands")
    decimals: bool = option(False, "include one-decimal operands")
    format: str = option("plain", "answer format", choices=FORMATS)
    ood_min_digits: int | None = option(None, "fewest digits of the OOD split's longer operand (unset: digits+1)")
    ood_max_digits: int | None = option(None, "most digits of the OOD split's longer operand (unset: ood_min_digits)")


class Arith(Task):
    name = "arith"
    Config = ArithConfig
    breakdowns = {"op": 1, "digits": 1}
    extras = {"work": "partial products", "latex": "LaTeX"}

    def __init__(self, cfg: ArithConfig):
        if not cfg.ops or set(cfg.ops) - set("+-*/"):
            raise DataError(f"arith ops must be a subset of '+-*/', got {cfg.ops!r}")
        if not 1 <= cfg.digits <= 6:
            raise DataError("arith digits must be between 1 and 6")
        if cfg.format not in FORMATS:
            raise DataError(f"arith format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
        self.ood = (cfg.ood_min_digits or cfg.digits + 1, cfg.ood_max_digits or cfg.ood_min_digits or cfg.digits + 1)
        if not cfg.digits < self.ood[0] <= self.ood[1] <= MAX_DIGITS:
            raise DataError(f"arith OOD digits need digits < ood_min_digits <= ood_max_digits <= {MAX_DIGITS}, got {self.ood}")
        self.cfg = cfg

    def symbols(self) -> list[str]:
        plain = [*"0123456789+-*/.()"]
        if self.cfg.format == "scratch":
            return plain + ["="]
        return plain + [" ", "=", "{", "}", "\\frac", "\\times"] if self.cfg.format == "latex" else plain

    def max_input_len(self) -> int:
        """The longest input of any split (the OOD split's)."""
        d = self.ood[1]
        return 2 * (d + 2) + 3

    def max_target_len(self) -> int:
        d = self.ood[1]  # room for the OOD split
        value = 2 * d + 4        # sign, product digits, point and two decimals
        if self.cfg.format == "latex":
            return value + 2 * (d + 2) + 16
        if self.cfg.format == "scratch" and "*" in self.cfg.ops:
            return value + d * (2 * d + 1)  # d partial products of at most 2d digits, each with its + or =
        return value

    def traits(self) -> Traits:
        ops = set(self.cfg.ops)
        return Traits(multiplies=bool(ops & set("*/")), digit_aligned=self.cfg.format == "reversed" and ops <= set("+-"))

    # Operands are whole numbers of tenths, so every check and result below is exact integer math.
    def _operand(self, rng, digits):
        k = rng.randint(1, digits)
        return self._with_digits(rng, k), k

    def _with_digits(self, rng, k):
        """An operand written with exactly k digits (a lone leading zero not counted), in tenths."""
        lo, hi = (0 if k == 1 else 10 ** (k - 1)), 10**k - 1
        x = rng.randint(lo, hi)
        if self.cfg.decimals and rng.random() < 0.25:
            while x % 10 == 0:  # 35.0 would be written 35, one digit short: a decimal shows its tenths
                x = rng.randint(lo, hi)
        else:
            x *= 10
        return -x if self.cfg.negatives and rng.random() < 0.25 else x

    def _pair(self, rng, op, span):
        """Operands for op: each of 1..digits digits, or with span (lo, hi) the longer of lo..hi digits."""
        lo, hi = span or (self.cfg.digits, self.cfg.digits)
        d = hi if lo == hi else rng.randint(lo, hi)  # the longer operand's digits
        while True:
            (a, ka), (b, kb) = self._operand(rng, d), self._operand(rng, d)
            if span and max(ka, kb) < d:  # force one operand to the digit count
                if rng.random() < 0.5:
                    a, ka = self._with_digits(rng, d), d
                else:
                    b, kb = self._with_digits(rng, d), d
            if op != "/":
                return a, b, ka, kb
            if b == 0:
                continue
            for _ in range(200):  # keep the divisor, look for a dividend with an exact quotient
                if (a * 100) % b == 0:  # a/b in hundredths is whole
                    return a, b, ka, kb
                a = self._with_digits(rng, ka)

    def axis(self) -> Axis:
        return Axis("digits", "digits of the longer operand", self.cfg.digits, MAX_DIGITS)

    def axis_value(self, example: Example) -> int:
        """The digits of the longer operand (meta digits `2x1`: each operand's)."""
        return max(int(k) for k in example.meta["digits"].split("x"))

    def sample(self, gen: torch.Generator, n: int, ood: bool = False) -> list[Example]:
        return self._problems(gen, n, self.ood if ood else None)

    def sample_at(self, gen: torch.Generator, n: int, value: int) -> list[Example]:
        return self._problems(gen, n, (value, value))

    def _problems(self, gen, n, span) -> list[Example]:
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        out = []
        for _ in range(n):
            op = rng.choice(self.cfg.ops)
            a, b, ka, kb = self._pair(rng, op, span)
            value = {"+": (a + b, 1), "-": (a - b, 1), "*": (a * b, 2), "/": ((a * 100) // b if b else 0, 2)}[op]
            A, B, V = num(a, 1), num(b, 1), num(*value)
            text = f"{A}{op}{B if b >= 0 else '(' + B + ')'}"
            out.append(Example(text, self.answer(A, op, B, V), meta_of(A, op, B)))
        return out

    def backwards(self, op: str | None) -> bool:
        """Whether the result of op is written backwards: every result in the reversed format,
        all but a quotient in the scratch format (long division finds its highest digit first)."""
        return self.cfg.format == "reversed" or (self.cfg.format == "scratch" and op != "/")

    def answer(self, a: str, op: str, b: str, value: str) -> str:
        if self.cfg.format == "scratch" and op == "*":
            return "+".join(str(p)[::-1] for p in partials(a, b)) + "=" + value[::-1]
        if self.backwards(op):
            return value[::-1]
        if self.cfg.format == "latex":
            return latex(a, op, b, value)
        return value

    # ------------------------------------------------------------------ what people type

    def normalize(self, text: str) -> str:
        """`12 × -3 =` -> `12*(-3)`: spaces and a trailing `=` go, × ÷ − (and full-width forms)
        become * / -, a negative second operand is parenthesised whether or not it was typed so,
        numbers take their shortest form (`03.50` -> `3.5`)."""
        t = fold(text, ()).translate(SIGNS)
        t = t[:-1] if t.endswith("=") else t
        m = TYPED.fullmatch(t)
        if not m:
            return t
        a, op, b = m.group(1), m.group(2), m.group(3)
        a, b = shortest(a), shortest(b)
        return f"{a}{op}{'(' + b + ')' if b.startswith('-') else b}"

    def check(self, text: str) -> list[str]:
        """Warnings for a problem outside what the run trained on; BadInput if it is no problem
        of this task (another shape, division by zero)."""
        a, op, b = parse(text)
        if op == "/" and Fraction(b) == 0:
            raise BadInput(f"{text!r} divides by zero")
        c, warnings = self.cfg, []
        if op not in c.ops:
            warnings.append(f"the operation {op} was not in training (only {' '.join(c.ops)})")
        for x in (a, b):
            if digits(x) > c.digits:
                warnings.append(f"{x} has {digits(x)} digits; training had at most {c.digits}")
        if not c.negatives and (a.startswith("-") or b.startswith("-")):
            warnings.append("training had no negative operands")
        places = max(len(x.partition(".")[2]) for x in (a, b))
        if places and not c.decimals:
            warnings.append("training had no decimal operands")
        elif places > 1:
            warnings.append(f"an operand has {places} decimal places; training had at most one")
        if op == "/" and (Fraction(a) / Fraction(b) * 100).denominator != 1:
            warnings.append("the quotient is not exact to two decimals; training only had exact quotients")
        return warnings

    def scored(self, output: str) -> str:
        """The part of an answer that exact match compares: the result after a scratch pad."""
        return output.rpartition("=")[2] if self.cfg.format == "scratch" else output

    def present(self, text: str, output: str) -> dict:
        """The model's output as shown to people: the answer in the natural order, a scratch
        pad's partial products in the natural order and, for a problem of this task, the
        equation in LaTeX."""
        try:
            a, op, b = parse(text)
        except BadInput:
            a = op = b = None
        result = self.scored(output)
        shown = {"answer": result[::-1] if self.backwards(op) else result}
        if self.cfg.format == "scratch" and "=" in output:
            shown["work"] = " + ".join(p[::-1] for p in output.rpartition("=")[0].split("+"))
        if self.cfg.format != "latex" and op is not None:
            shown["latex"] = latex(a, op, b, shown["answer"])
        return shown


def parse(text: str) -> tuple[str, str, str]:
    """(a, op, b) of a problem in the task's form `12*3`, `-4.5+(-3)`; BadInput otherwise."""
    m = PROBLEM.fullmatch(text)
    if not m:
        raise BadInput(f"{text!r} is not a problem of this task: expected two numbers and one of + - * /, "
                       "e.g. 12*3, 7/2 or -4.5+(-3)")
    return m.group(1), m.group(2), m.group(3).strip("()")


def meta_of(a: str, op: str, b: str) -> dict:
    """The breakdown metadata of a problem, read off its text: op, digits (`2x1`), negative, decimal."""
    return {"op": op, "digits": f"{digits(a)}x{digits(b)}", "negative": a.startswith("-") or b.startswith("-"),
            "decimal": "." in a or "." in b}


def partials(a: str, b: str) -> list[int]:
    """The partial products of a * b's digits, point and sign left out: one per digit of b from
    the lowest, each shifted to its place: partials('-4.7', '23') -> [141, 940]. Always b's
    digits, not the longer operand's: then a 2-digit by 1-digit product, the step a 2x2 problem
    needs, is also what every 2x1 problem trains (taken per digit of the longer operand, 2x2
    problems were nearly all wrong after 10 minutes)."""
    x, y = (int(n.lstrip("-").replace(".", "")) for n in (a, b))
    return [x * int(d) * 10**i for i, d in enumerate(reversed(str(y)))]


def latex(a: str, op: str, b: str, value: str) -> str:
    rb = f"({b})" if b.startswith("-") else b
    lhs = {"+": f"{a} + {rb}", "-": f"{a} - {rb}", "*": f"{a} \\times {rb}", "/": f"\\frac{{{a}}}{{{b}}}"}[op]
    return f"{lhs} = {value}"


def digits(number: str) -> int:
    """Digits of a number as written, a lone leading zero not counted: 12 -> 2, 4.7 -> 2, 0.5 -> 1."""
    return len(number.lstrip("-").replace(".", "").lstrip("0")) or 1


def shortest(number: str) -> str:
    """`-03.50` -> `-3.5`, `-0` -> `0`: the form the task writes numbers in."""
    sign, body = ("-", number[1:]) if number.startswith("-") else ("", number)
    whole, _, frac = body.partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    text = f"{whole}.{frac}" if frac else whole
    return "0" if text == "0" else sign + text


def num(scaled: int, places: int) -> str:
    """Shortest decimal text of scaled / 10**places: num(35, 1) -> '3.5', num(1200, 2) -> '12'."""
    sign, scaled = ("-" if scaled < 0 else ""), abs(scaled)
    while places and scaled % 10 == 0:
        scaled //= 10
        places -= 1
    if places == 0:
        return f"{sign}{scaled}"
    whole, frac = divmod(scaled, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"
