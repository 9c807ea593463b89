"""The one token/dataset layer: vocabulary, tasks, splits and batches.

Every architecture sees the same token ids from here; no other module hard-codes them.

An example is (input, target, meta): plain strings plus a dict used for breakdowns.
Models see it as two token sequences:

    prompt = <bos> input <sep>          answer = target <eos>

Splits. Each possible input belongs to exactly one of train / validation / test, decided by a
fixed hash of the input string (10% test, 5% validation, the rest train). So the test and
validation sets never overlap train by input, even on small problem spaces, and every class of
problem keeps most of its instances for training. The out-of-distribution split (longer bracket
inputs, one more arithmetic digit) is drawn from the test share as well. Validation, test and
OOD inputs are unique within their split. A data folder holds the splits as JSON Lines and a
meta.json with each file's sha256, so the frozen test set is verified on every load.

    python dataset.py --task bracket          # writes data/<task>-<hash>/ and prints a summary
"""
import argparse
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass, fields

import torch
from safetensors import safe_open
from safetensors.torch import save_file

# ----------------------------------------------------------------------------- vocabulary

SPECIALS = ["<pad>", "<bos>", "<sep>", "<eos>", "<mask>"]
SYMBOLS = ["(", ")", "[", "]", "{", "}", "【", "】", *"0123456789",
           "+", "-", "*", "/", ".", "=", " ", "\\frac", "\\times"]
VOCAB = SPECIALS + SYMBOLS
VOCAB_SIZE = len(VOCAB)
PAD, BOS, SEP, EOS, MASK = range(len(SPECIALS))
STOI = {t: i for i, t in enumerate(VOCAB)}
_TOKEN = re.compile("|".join(re.escape(t) for t in sorted(SYMBOLS, key=len, reverse=True)))


class DataError(Exception):
    """A problem with data the user can fix (bad file, impossible split); one line, no traceback."""


def encode(text: str) -> list[int]:
    if "\\" not in text:  # fast path: every symbol but \frac and \times is one character
        try:
            return [STOI[c] for c in text]
        except KeyError:
            pass
    ids, pos = [], 0
    for m in _TOKEN.finditer(text):
        if m.start() != pos:
            break
        ids.append(STOI[m.group()])
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"unknown symbol {text[pos]!r} in {text!r}")
    return ids


def decode(ids) -> str:
    """Token ids to text; stops at the first <eos>, skips other special tokens."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i >= len(SPECIALS):
            out.append(VOCAB[i])
    return "".join(out)


# ----------------------------------------------------------------------------- tasks

@dataclass
class Example:
    input: str
    target: str
    meta: dict


@dataclass
class BracketConfig:
    min_len: int = 1
    max_len: int = 30
    max_depth: int = 10
    kinds: str = "()【】{}[]"
    ood_min_len: int = 31
    ood_max_len: int = 60


class Bracket:
    """Close the brackets that an input prefix leaves open.

    input:  a prefix that never closes a bracket wrongly, e.g. `【()】{{(`   (length min_len..max_len,
            nesting never deeper than max_depth; at each step a bracket opens or closes with
            equal chance where both are allowed, the opener's kind uniform over `kinds`)
    target: exactly the closers for what is still open, innermost first, e.g. `)}}`; empty when
            everything is closed.
    meta:   length (input length), depth (open brackets at the end = closers needed),
            max_depth (deepest nesting reached).
    OOD:    the same with input lengths ood_min_len..ood_max_len and the same depth limit.
    """
    name = "bracket"
    Config = BracketConfig
    breakdowns = ["length", "depth"]

    def __init__(self, cfg: BracketConfig):
        if len(cfg.kinds) % 2 or not cfg.kinds:
            raise DataError("bracket kinds must be pairs of opener and closer, e.g. '()[]'")
        if not 1 <= cfg.min_len <= cfg.max_len or cfg.max_depth < 1:
            raise DataError("bracket lengths need 1 <= min_len <= max_len and max_depth >= 1")
        self.cfg = cfg
        self.pairs = [(cfg.kinds[i], cfg.kinds[i + 1]) for i in range(0, len(cfg.kinds), 2)]

    def max_target_len(self) -> int:
        return self.cfg.max_depth

    def max_input_len(self) -> int:
        return max(self.cfg.max_len, self.cfg.ood_max_len)

    def sample(self, gen: torch.Generator, n: int, ood: bool = False) -> list[Example]:
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        lo, hi = (self.cfg.ood_min_len, self.cfg.ood_max_len) if ood else (self.cfg.min_len, self.cfg.max_len)
        out = []
        for _ in range(n):
            length, stack, chars, deepest = rng.randint(lo, hi), [], [], 0
            for _ in range(length):
                can_open, can_close = len(stack) < self.cfg.max_depth, bool(stack)
                if can_open and (not can_close or rng.random() < 0.5):
                    opener, closer = rng.choice(self.pairs)
                    stack.append(closer)
                    chars.append(opener)
                    deepest = max(deepest, len(stack))
                else:
                    chars.append(stack.pop())
            target = "".join(reversed(stack))
            out.append(Example("".join(chars), target, {"length": length, "depth": len(stack), "max_depth": deepest}))
        return out


@dataclass
class ArithConfig:
    ops: str = "+-*/"
    digits: int = 2
    negatives: bool = False
    decimals: bool = False
    format: str = "plain"  # plain | reversed | latex


FORMATS = ("plain", "reversed", "latex")


class Arith:
    """Two-operand arithmetic: + - * /.

    operands: each has 1..digits digits (the digit count uniform, so one- and two-digit operands
              come in every combination); with `negatives` each is negative with chance 1/4, with
              `decimals` each has one decimal place with chance 1/4 (`4.7` counts two digits).
              Division is drawn so that the quotient is exact with at most two decimal places
              and the divisor is never zero.
    input:    `12*3`, `7/2`, `-4.5+(-3)` (a negative second operand is parenthesised).
    target:   the exact result, shortest decimal form: `36`, `3.5`, `-7.5`.
              format=reversed writes the result's characters backwards (`63`, `5.3`, `5.7-`),
              which lets a left-to-right model produce the low digits first.
              format=latex writes the whole equation: `12 \\times 3 = 36`, `\\frac{7}{2} = 3.5`.
    meta:     op, digits (`2x1`: digits of each operand), negative, decimal.
    OOD:      operands with up to digits+1 digits, at least one with exactly digits+1.
    """
    name = "arith"
    Config = ArithConfig
    breakdowns = ["op", "digits"]

    def __init__(self, cfg: ArithConfig):
        if not cfg.ops or set(cfg.ops) - set("+-*/"):
            raise DataError(f"arith ops must be a subset of '+-*/', got {cfg.ops!r}")
        if not 1 <= cfg.digits <= 6:
            raise DataError("arith digits must be between 1 and 6")
        if cfg.format not in FORMATS:
            raise DataError(f"arith format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
        self.cfg = cfg

    def max_input_len(self) -> int:
        d = self.cfg.digits + 1
        return 2 * (d + 2) + 3

    def max_target_len(self) -> int:
        d = self.cfg.digits + 1  # room for the OOD split
        value = 2 * d + 4        # sign, product digits, point and two decimals
        if self.cfg.format == "latex":
            return value + 2 * (d + 2) + 16
        return value

    # Operands are whole numbers of tenths, so every check and result below is exact integer math.
    def _operand(self, rng, digits):
        k = rng.randint(1, digits)
        return self._with_digits(rng, k), k

    def _with_digits(self, rng, k):
        x = rng.randint(0 if k == 1 else 10 ** (k - 1), 10**k - 1)
        x = x if self.cfg.decimals and rng.random() < 0.25 else x * 10
        return -x if self.cfg.negatives and rng.random() < 0.25 else x

    def _pair(self, rng, op, ood):
        d = self.cfg.digits + (1 if ood else 0)
        while True:
            (a, ka), (b, kb) = self._operand(rng, d), self._operand(rng, d)
            if ood and max(ka, kb) < d:  # force one operand to the new digit count
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

    def sample(self, gen: torch.Generator, n: int, ood: bool = False) -> list[Example]:
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        out = []
        for _ in range(n):
            op = rng.choice(self.cfg.ops)
            a, b, ka, kb = self._pair(rng, op, ood)
            value = {"+": (a + b, 1), "-": (a - b, 1), "*": (a * b, 2), "/": ((a * 100) // b if b else 0, 2)}[op]
            A, B, V = num(a, 1), num(b, 1), num(*value)
            text = f"{A}{op}{B if b >= 0 else '(' + B + ')'}"
            out.append(Example(text, self.answer(A, op, B, V), {
                "op": op, "digits": f"{ka}x{kb}", "negative": a < 0 or b < 0,
                "decimal": a % 10 != 0 or b % 10 != 0}))
        return out

    def answer(self, a: str, op: str, b: str, value: str) -> str:
        if self.cfg.format == "reversed":
            return value[::-1]
        if self.cfg.format == "latex":
            rb = f"({b})" if b.startswith("-") else b
            lhs = {"+": f"{a} + {rb}", "-": f"{a} - {rb}", "*": f"{a} \\times {rb}",
                   "/": f"\\frac{{{a}}}{{{b}}}"}[op]
            return f"{lhs} = {value}"
        return value


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


TASKS = {"bracket": Bracket, "arith": Arith}


def make_task(name: str, config: dict | None = None):
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    cls = TASKS[name]
    known = {f.name for f in fields(cls.Config)}
    unknown = set(config or {}) - known
    if unknown:
        raise DataError(f"unknown {name} option(s): {', '.join(sorted(unknown))}")
    return cls(cls.Config(**(config or {})))


# ----------------------------------------------------------------------------- splits on disk

SPLITS = ("train", "val", "test", "ood")
DEFAULT_SIZES = {"train": 100_000, "val": 1000, "test": 2000, "ood": 2000}


def split_of(text: str) -> str:
    """The split an input belongs to, fixed for all time by a hash of the input."""
    bucket = zlib.crc32(text.encode()) % 100
    return "test" if bucket < 10 else "val" if bucket < 15 else "train"


def _draw(task, split: str, n: int, seed: int) -> list[Example]:
    gen = torch.Generator().manual_seed(seed * 1000 + SPLITS.index(split))
    home = "test" if split == "ood" else split
    unique = split != "train"
    out, seen, drawn = [], set(), 0
    while len(out) < n:
        if drawn > 200 * n + 100_000:
            raise DataError(f"could only find {len(out)} distinct {split} inputs for {n} asked: the task's "
                            f"problem space is too small; ask for a smaller --{split}-size or a larger task")
        for ex in task.sample(gen, 1024, ood=split == "ood"):
            drawn += 1
            if split_of(ex.input) != home or (unique and ex.input in seen):
                continue
            seen.add(ex.input)
            out.append(ex)
            if len(out) == n:
                break
    return out


@dataclass
class DataSpec:
    """Everything that fixes a data folder: the task, its options, the sizes and the data seed."""
    task: str = "bracket"
    options: dict | None = None
    train_size: int = DEFAULT_SIZES["train"]
    val_size: int = DEFAULT_SIZES["val"]
    test_size: int = DEFAULT_SIZES["test"]
    ood_size: int = DEFAULT_SIZES["ood"]
    seed: int = 0

    def sizes(self) -> dict:
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size, "ood": self.ood_size}

    def full_options(self) -> dict:
        return asdict(make_task(self.task, self.options).cfg)

    def folder(self, root="data") -> str:
        key = json.dumps({"task": self.task, "options": self.full_options(), "sizes": self.sizes(),
                          "seed": self.seed, "vocab": VOCAB}, sort_keys=True)
        return os.path.join(root, f"{self.task}-{hashlib.sha256(key.encode()).hexdigest()[:10]}")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare(spec: DataSpec, root="data") -> str:
    """Create the spec's data folder if it is missing (atomically) and return its path."""
    folder = spec.folder(root)
    if os.path.isdir(folder):
        return folder
    task = make_task(spec.task, spec.options)
    if spec.test_size < 1 or spec.val_size < 1 or spec.train_size < 1 or spec.ood_size < 1:
        raise DataError("every split needs at least one example")
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    try:
        hashes = {}
        for split, n in spec.sizes().items():
            path = os.path.join(tmp, f"{split}.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                for ex in _draw(task, split, n, spec.seed):
                    f.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")
            hashes[split] = _sha256(path)
        meta = {"task": spec.task, "options": spec.full_options(), "sizes": spec.sizes(), "seed": spec.seed,
                "sha256": hashes, "vocab": VOCAB}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process made it first: theirs is as good as ours
            if not os.path.isdir(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_batch(folder, "train")  # writes the token cache that training reads
    return folder


def read_meta(folder: str) -> dict:
    path = os.path.join(folder, "meta.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path} is missing; delete {folder} to regenerate it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); delete {folder} to regenerate it") from None


def load_split(folder: str, split: str) -> list[Example]:
    """Read one split, checking every line and the file's recorded sha256."""
    meta = read_meta(folder)
    path = os.path.join(folder, f"{split}.jsonl")
    if not os.path.isfile(path):
        raise DataError(f"{path} is missing; delete {folder} to regenerate it")
    out = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for lineno, line in enumerate(f, 1):
                try:
                    d = json.loads(line)
                    ex = Example(d["input"], d["target"], d["meta"])
                    if not (isinstance(ex.input, str) and isinstance(ex.target, str) and isinstance(ex.meta, dict)):
                        raise TypeError("input and target must be strings, meta an object")
                    encode(ex.input), encode(ex.target)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    reason = f"missing field {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
                    raise DataError(f"{path}:{lineno}: bad line ({reason}); delete {folder} to regenerate it") from None
                out.append(ex)
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text; delete {folder} to regenerate it") from None
    if _sha256(path) != meta.get("sha256", {}).get(split):
        raise DataError(f"{path} does not match the sha256 in meta.json (it was changed); "
                        f"delete {folder} to regenerate it")
    return out


# ----------------------------------------------------------------------------- tensors and batches

@dataclass
class Batch:
    """Right-padded token tensors: prompt = <bos> input <sep>, answer = target <eos>."""
    prompt: torch.Tensor
    prompt_len: torch.Tensor
    answer: torch.Tensor
    answer_len: torch.Tensor

    def __len__(self):
        return self.prompt.shape[0]

    def __getitem__(self, idx) -> "Batch":
        pl, al = self.prompt_len[idx], self.answer_len[idx]
        return Batch(self.prompt[idx, : int(pl.max())], pl, self.answer[idx, : int(al.max())], al)

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.prompt, self.prompt_len, self.answer, self.answer_len)))


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), max(1, int(lens.max()))), PAD, dtype=torch.long)
    out[torch.arange(out.shape[1]) < lens[:, None]] = torch.tensor(list(itertools.chain.from_iterable(seqs)), dtype=torch.long)
    return out, lens


def to_batch(examples: list[Example]) -> Batch:
    prompt, pl = _pad([[BOS, *encode(e.input), SEP] for e in examples])
    answer, al = _pad([[*encode(e.target), EOS] for e in examples])
    return Batch(prompt, pl, answer, al)


def load_batch(folder: str, split: str) -> Batch:
    """A whole split as one Batch. The tensors are cached next to the JSON Lines file
    (`<split>.tokens.safetensors`, tagged with that file's sha256), so a run does not spend its
    budget parsing and encoding 100,000 lines again; a stale or unreadable cache is rebuilt."""
    path = os.path.join(folder, f"{split}.jsonl")
    cache = os.path.join(folder, f"{split}.tokens.safetensors")
    want = read_meta(folder).get("sha256", {}).get(split)
    if os.path.isfile(path) and _sha256(path) == want:
        try:
            with safe_open(cache, framework="pt") as f:
                if f.metadata().get("sha256") == want:
                    return Batch(*(f.get_tensor(k) for k in ("prompt", "prompt_len", "answer", "answer_len")))
        except Exception:  # missing or corrupt cache (safetensors raises several kinds): rebuild it
            pass
    b = to_batch(load_split(folder, split))  # checks every line and the sha256
    try:
        tmp = f"{cache}.{os.getpid()}.tmp"
        save_file({"prompt": b.prompt, "prompt_len": b.prompt_len, "answer": b.answer, "answer_len": b.answer_len},
                  tmp, metadata={"sha256": want})
        os.replace(tmp, cache)
    except OSError:  # a read-only data folder: work without the cache
        pass
    return b


def lm_sequences(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder-only layout: x = prompt+answer (right-padded) minus the last position, y = the next
    token where it is part of the answer, -100 (ignored) elsewhere."""
    B, P = b.prompt.shape
    A = b.answer.shape[1]
    total = int((b.prompt_len + b.answer_len).max())
    seq = torch.full((B, P + A), PAD, dtype=torch.long, device=b.prompt.device)
    seq[:, :P] = b.prompt
    pos = b.prompt_len[:, None] + torch.arange(A, device=seq.device)
    valid = torch.arange(A, device=seq.device)[None, :] < b.answer_len[:, None]
    seq.scatter_(1, pos, torch.where(valid, b.answer, seq.gather(1, pos)))
    labels = torch.full_like(seq, -100)
    labels.scatter_(1, pos - 1, torch.where(valid, b.answer, -100))
    return seq[:, : total - 1], labels[:, : total - 1]


def slot_sequences(b: Batch, n_slots: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder-only layout: prompt followed by n_slots <mask> tokens, right-padded.
    Returns (x, slot_pos (B, n_slots) positions of the slots, y (B, n_slots) answer or -100)."""
    B, P = b.prompt.shape
    x = torch.full((B, P + n_slots), PAD, dtype=torch.long, device=b.prompt.device)
    x[:, :P] = b.prompt
    slot_pos = b.prompt_len[:, None] + torch.arange(n_slots, device=x.device)
    x.scatter_(1, slot_pos, MASK)
    x = x[:, : int(b.prompt_len.max()) + n_slots]
    y = torch.full((B, n_slots), -100, dtype=torch.long, device=x.device)
    k = min(n_slots, b.answer.shape[1])
    ans = b.answer[:, :k]
    y[:, :k] = torch.where(torch.arange(k, device=x.device)[None, :] < b.answer_len[:, None], ans, -100)
    return x, slot_pos, y


def left_pad(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Move each row's first `length` tokens to the right end (left padding with <pad>)."""
    T = tokens.shape[1]
    shift = (T - lengths)[:, None]
    idx = (torch.arange(T, device=tokens.device)[None, :] - shift)
    out = tokens.gather(1, idx.clamp(min=0))
    return torch.where(idx >= 0, out, PAD)


def answers_to_text(tokens: torch.Tensor) -> list[str]:
    return [decode(row) for row in tokens.tolist()]


# ----------------------------------------------------------------------------- command line

def add_data_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("data")
    g.add_argument("--task", default="bracket", help="bracket | arith (default bracket)")
    g.add_argument("--min-len", type=int, help="bracket: shortest input (default 1)")
    g.add_argument("--max-len", type=int, help="bracket: longest input (default 30)")
    g.add_argument("--max-depth", type=int, help="bracket: deepest nesting (default 10)")
    g.add_argument("--kinds", help="bracket: opener/closer pairs (default '()【】{}[]')")
    g.add_argument("--ood-min-len", type=int, help="bracket: shortest OOD input (default 31)")
    g.add_argument("--ood-max-len", type=int, help="bracket: longest OOD input (default 60)")
    g.add_argument("--ops", help="arith: operations, a subset of '+-*/' (default all four)")
    g.add_argument("--digits", type=int, help="arith: most digits per operand (default 2)")
    g.add_argument("--negatives", action="store_true", default=None, help="arith: include negative operands")
    g.add_argument("--decimals", action="store_true", default=None, help="arith: include one-decimal operands")
    g.add_argument("--format", choices=FORMATS, help="arith: answer format (default plain)")
    for split, n in DEFAULT_SIZES.items():
        g.add_argument(f"--{split}-size", type=int, default=n, help=f"examples in the {split} split (default {n})")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the data splits (default 0)")
    g.add_argument("--data-dir", default="data", help="where data folders live (default data/)")


def spec_from_args(a) -> DataSpec:
    names = {"bracket": ["min_len", "max_len", "max_depth", "kinds", "ood_min_len", "ood_max_len"],
             "arith": ["ops", "digits", "negatives", "decimals", "format"]}
    if a.task not in TASKS:
        raise DataError(f"unknown task {a.task!r}; choose one of: {', '.join(TASKS)}")
    options = {k: getattr(a, k) for k in names[a.task] if getattr(a, k) is not None}
    other = [k for t, ks in names.items() if t != a.task for k in ks if getattr(a, k) is not None]
    if other:
        raise DataError(f"option --{other[0].replace('_', '-')} does not apply to task {a.task}")
    spec = DataSpec(a.task, options, a.train_size, a.val_size, a.test_size, a.ood_size, a.data_seed)
    make_task(spec.task, spec.options)  # validate now
    return spec


def summary(folder: str):
    from rich.console import Console
    from rich.table import Table
    meta = read_meta(folder)
    table = Table(title=f"{folder}  ({meta['task']} {json.dumps(meta['options'], ensure_ascii=False)})")
    for col in ("split", "examples", "input length", "target length", "empty targets", "example", "sha256"):
        table.add_column(col)
    for split in SPLITS:
        exs = load_split(folder, split)
        il = [len(encode(e.input)) for e in exs]
        tl = [len(encode(e.target)) for e in exs]
        ex = exs[0]
        table.add_row(split, str(len(exs)), f"{min(il)}..{max(il)}", f"{min(tl)}..{max(tl)}",
                      f"{sum(t == 0 for t in tl) / len(tl):.1%}", f"{ex.input} → {ex.target}",
                      meta["sha256"][split][:12])
    Console().print(table)


def main(argv=None):
    from runs import Parser
    p = Parser(description="Write train/val/test/ood splits as JSON Lines and print a summary.")
    add_data_args(p)
    a = p.parse_args(argv)
    try:
        spec = spec_from_args(a)
        folder = prepare(spec, a.data_dir)
        summary(folder)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
