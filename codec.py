"""The token codec: a task's symbols as token ids. Each task declares its symbols (tasks/), every
data folder and every run folder stores its codec's tokens in JSON, and a run is scored, asked
and served with the codec it was trained with. So a new task or a new symbol never changes the
ids of a saved run.

Ids 0..4 are the same special tokens in every codec; the task's symbols follow in its own order:

    <pad> <bos> <sep> <eos> <mask>  (  )  [  ]  ...

A problem is two token sequences, put together by the layouts (layouts.py):

    prompt = <bos> input <sep>          answer = target <eos>

Symbols are mostly single characters; a few are longer (`\\frac`, `\\times`), matched longest first.
"""
import hashlib
import itertools
import json
import re
from dataclasses import dataclass

import numpy as np
import torch

from errors import UserError

SPECIALS = ("<pad>", "<bos>", "<sep>", "<eos>", "<mask>")
PAD, BOS, SEP, EOS, MASK = range(len(SPECIALS))


class UnknownSymbols(UserError):
    """Text with characters the codec cannot represent; says which, and what is allowed."""

    def __init__(self, text: str, bad: list[str], allowed: list[str]):
        self.text, self.bad, self.allowed = text, bad, allowed
        shown = ", ".join(repr(c) for c in bad)
        super().__init__(f"{text!r} has symbol{'s' if len(bad) > 1 else ''} this model does not know: {shown}; "
                         f"allowed: {' '.join(allowed)}")


class Codec:
    def __init__(self, symbols):
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols) or set(symbols) & set(SPECIALS) or "" in symbols:
            raise ValueError(f"a codec needs distinct, non-empty symbols other than the specials, got {symbols}")
        self.symbols = symbols
        self.tokens = [*SPECIALS, *symbols]
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        self._single = all(len(s) == 1 for s in symbols)
        self._token = re.compile("|".join(re.escape(t) for t in sorted(symbols, key=len, reverse=True)))

    @classmethod
    def from_tokens(cls, tokens) -> "Codec":
        if not isinstance(tokens, list) or tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a codec's tokens must start with {', '.join(SPECIALS)}")
        return cls(tokens[len(SPECIALS):])

    @classmethod
    def of(cls, config: dict) -> "Codec":
        """The codec a run or data folder was made with: its `codec` entry, or the `vocab` list that
        runs and data folders saved before codecs existed hold instead (same layout of ids)."""
        tokens = (config.get("codec") or {}).get("tokens") if isinstance(config.get("codec"), dict) else None
        return cls.from_tokens(tokens if tokens is not None else config.get("vocab"))

    def to_json(self) -> dict:
        return {"tokens": self.tokens}

    def key(self) -> str:
        """A short fingerprint of the tokens, for file names and cache tags."""
        return hashlib.sha256(json.dumps(self.tokens, ensure_ascii=False).encode()).hexdigest()[:12]

    def number_ids(self) -> tuple[list[int], int]:
        """The ids of the digit symbols and of the decimal point (-1 if none): what a model's digit
        place embeddings look for."""
        return [i for i, t in enumerate(self.tokens) if t.isdigit() and len(t) == 1], self.stoi.get(".", -1)

    def __len__(self):
        return len(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Codec) and self.tokens == other.tokens

    def encode(self, text: str) -> list[int]:
        """Token ids of text; UnknownSymbols naming every character that no symbol covers."""
        if self._single:
            try:
                return [self.stoi[c] for c in text]
            except KeyError:
                pass
        ids, pos, bad = [], 0, []
        while pos < len(text):
            m = self._token.match(text, pos)
            if m:
                ids.append(self.stoi[m.group()])
                pos = m.end()
            else:
                bad.append(text[pos])
                pos += 1
        if bad:
            raise UnknownSymbols(text, list(dict.fromkeys(bad)), self.symbols)
        return ids

    def decode(self, ids) -> str:
        """Token ids to text; stops at the first <eos>, skips the other special tokens."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if len(SPECIALS) <= i < len(self.tokens):
                out.append(self.tokens[i])
        return "".join(out)

    def prompts(self, inputs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded <bos> input <sep> rows and their lengths."""
        return pad([[BOS, *self.encode(x), SEP] for x in inputs])

    def batch(self, examples) -> "Batch":
        """Examples (with .input and .target) as right-padded prompt and answer tensors."""
        prompt, pl = self.prompts([e.input for e in examples])
        answer, al = pad([[*self.encode(e.target), EOS] for e in examples])
        return Batch(prompt, pl, answer, al)


def pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows and their lengths (built in numpy: a one-problem call costs microseconds)."""
    lens = np.fromiter(map(len, seqs), np.int64, len(seqs))
    out = np.full((len(seqs), max(1, int(lens.max()) if len(seqs) else 1)), PAD, np.int64)
    out[np.arange(out.shape[1]) < lens[:, None]] = np.fromiter(itertools.chain.from_iterable(seqs), np.int64, int(lens.sum()))
    return torch.from_numpy(out), torch.from_numpy(lens)


@dataclass
class Batch:
    """Right-padded token tensors: prompt = <bos> input <sep>, answer = target <eos>."""
    prompt: torch.Tensor
    prompt_len: torch.Tensor
    answer: torch.Tensor
    answer_len: torch.Tensor

    def __len__(self):
        return self.prompt.shape[0]

    def take(self, idx, prompt_width: int, answer_width: int) -> "Batch":
        """Rows idx, cut to the given widths (the longest prompt and answer among them, which the
        caller knows from lengths kept on the CPU: no wait for the GPU)."""
        return Batch(self.prompt[idx, :prompt_width], self.prompt_len[idx], self.answer[idx, :answer_width], self.answer_len[idx])

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.prompt, self.prompt_len, self.answer, self.answer_len)))
