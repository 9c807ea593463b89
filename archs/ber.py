"""BERT-style encoder-only transformer. The input is <bos> input <sep> followed by n_slots <mask>
tokens (output slots); a bidirectional encoder fills every slot at once, trained with a
masked-token objective on the slots (target <eos>, slots after <eos> ignored). Each slot also gets
a learned slot-index embedding, so slot k knows it must produce the k-th answer token. Decoding
takes every slot's most likely token and cuts at the first <eos>: no causal mask, no left-to-right
generation."""
from dataclasses import dataclass

import torch
import torch.nn as nn

from archs.common import POS_KINDS, Block, Positions, answer_loss, init_weights
from dataset import EOS, PAD, VOCAB_SIZE, Batch, slot_sequences


@dataclass
class Config:
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dropout: float = 0.0
    pos: str = "alibi"  # alibi | rope | none (see archs/common.py)
    n_slots: int = 16  # train.py sets it to the task's longest answer + 1
    vocab_size: int = VOCAB_SIZE


# Training defaults for this architecture (train.py flags override them).
TRAIN_DEFAULTS = {"lr": 3e-3, "batch_size": 128}


def search_space(trial):
    return {"model": {"n_layer": trial.suggest_int("n_layer", 1, 4),
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
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.slot_emb = nn.Embedding(cfg.n_slots, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_weights(self)
        self.head.weight = self.emb.weight

    def forward(self, b: Batch):
        x, slot_pos, y = slot_sequences(b, self.cfg.n_slots)
        bias, rope = Positions(self.cfg.pos, self.cfg.n_head, self.cfg.d_model // self.cfg.n_head, causal=False).step(x != PAD)
        h = self.emb(x)
        slots = self.slot_emb.weight[None].expand(h.shape[0], -1, -1)
        h = self.drop(h.scatter_add(1, slot_pos[..., None].expand_as(slots), slots))
        for block in self.blocks:
            h = block(h, bias, rope=rope)
        h = h.gather(1, slot_pos[..., None].expand(-1, -1, h.shape[-1]))
        return self.head(self.ln_f(h)), y

    def loss(self, b: Batch, per_token=False):
        logits, y = self(b)
        return answer_loss(logits, y, b, per_token)

    @torch.no_grad()
    def generate(self, b: Batch, max_new: int):
        tok = self(b)[0].argmax(-1)[:, :max_new]
        after_eos = (tok == EOS).long().cumsum(1) - (tok == EOS).long() > 0
        return tok.masked_fill(after_eos, PAD)
