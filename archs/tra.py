"""Transformer encoder-decoder: a bidirectional encoder reads <bos> input <sep>; a causal decoder
with cross-attention writes target <eos> after a <bos>. Generation caches the decoder's keys and
values and computes the cross-attention keys/values once."""
from dataclasses import dataclass

import torch
import torch.nn as nn

from archs.common import POS_KINDS, Block, Positions, answer_loss, cross_bias, greedy, init_weights
from dataset import BOS, PAD, VOCAB_SIZE, Batch


@dataclass
class Config:
    # Defaults from hyper.py study tra-bracket-1min-s2 (49 one-minute trials on bracket, trial 36):
    # one layer each side, two heads (one looking left, one right in the encoder) and a gentler,
    # longer-warmed learning rate took bracket 1min from 13% (2x4 heads, d=64, lr 3e-3) to 99%.
    n_layer: int = 1  # encoder layers; the decoder has as many
    n_head: int = 2
    d_model: int = 32
    dropout: float = 0.0
    pos: str = "alibi"  # alibi | rope | none (see archs/common.py)
    vocab_size: int = VOCAB_SIZE


# Training defaults for this architecture (train.py flags override them).
TRAIN_DEFAULTS = {"lr": 1.6e-3, "batch_size": 128, "warmup": 0.09}


def search_space(trial):
    return {"model": {"n_layer": trial.suggest_int("n_layer", 1, 3),
                      "n_head": trial.suggest_categorical("n_head", [2, 4]),
                      "d_model": trial.suggest_categorical("d_model", [32, 64, 96, 128]),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


class Model(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        assert cfg.pos in POS_KINDS, f"pos must be one of {POS_KINDS}"
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)  # shared by encoder, decoder and head
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.n_layer))
        self.decoder = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout, cross=True) for _ in range(cfg.n_layer))
        self.ln_enc, self.ln_dec = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_weights(self)
        self.head.weight = self.emb.weight

    def _positions(self, causal):
        return Positions(self.cfg.pos, self.cfg.n_head, self.cfg.d_model // self.cfg.n_head, causal)

    def encode(self, prompt):
        valid = prompt != PAD
        bias, rope = self._positions(causal=False).step(valid)
        x = self.drop(self.emb(prompt))
        for block in self.encoder:
            x = block(x, bias, rope=rope)
        return self.ln_enc(x), valid

    def decode(self, tokens, mem, mem_valid, positions, caches=None):
        bias, rope = positions.step(tokens != PAD)
        x = self.drop(self.emb(tokens))
        mb = cross_bias(self.cfg.pos, self.cfg.n_head, positions.last, mem_valid)
        for i, block in enumerate(self.decoder):
            x = block(x, bias, rope=rope, mem=mem, mem_bias=mb, cache=None if caches is None else caches[i])
        return self.head(self.ln_dec(x))

    def loss(self, b: Batch, per_token=False):
        mem, valid = self.encode(b.prompt)
        dec_in = torch.cat((torch.full_like(b.answer[:, :1], BOS), b.answer[:, :-1]), 1)
        y = b.answer.masked_fill(b.answer == PAD, -100)
        logits = self.decode(dec_in, mem, valid, self._positions(causal=True))
        return answer_loss(logits, y, b, per_token)

    @torch.no_grad()
    def generate(self, b: Batch, max_new: int):
        mem, valid = self.encode(b.prompt)
        pos, caches = self._positions(causal=True), [{} for _ in self.decoder]
        step = lambda tok: self.decode(tok[:, None], mem, valid, pos, caches)[:, -1]  # noqa: E731
        return greedy(step(torch.full_like(b.prompt[:, 0], BOS)), step, max_new)
