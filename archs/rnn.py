"""Recurrent language model over the token stream <bos> input <sep> target <eos>, shared by the
gru and lstm architectures, with their config, training defaults and search space. Loss on the answer only;
generation packs the prompts so padding never enters the recurrent state."""
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from archs.common import answer_loss, greedy, init_weights
from dataset import VOCAB_SIZE, Batch, lm_sequences


@dataclass
class Config:
    d_model: int = 128
    n_layer: int = 1
    dropout: float = 0.0
    vocab_size: int = VOCAB_SIZE


# Training defaults for gru and lstm (train.py flags override them). From hyper.py study gru-bracket-1min
# (best trial: d=128, one layer, lr 6.4e-3, batch 64, 4.4% warm-up; val 97.2% against 92.1% for lr 3e-3,
# batch 128). Smaller batches give twice the steps in a budget; lstm gains as much (bracket 1min, seed 0:
# 99.9% against 99.8%).
TRAIN_DEFAULTS = {"lr": 6.4e-3, "batch_size": 64, "warmup": 0.044}


def search_space(trial):
    return {"model": {"d_model": trial.suggest_categorical("d_model", [64, 128, 192, 256]),
                      "n_layer": trial.suggest_int("n_layer", 1, 3),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


class RNNLM(nn.Module):
    def __init__(self, cfg, cell):
        super().__init__()
        self.cfg = cfg
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        init_weights(self)
        self.rnn = rnn(cfg.d_model, cfg.d_model, cfg.n_layer, batch_first=True,
                       dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def loss(self, b: Batch, per_token=False):
        x, y = lm_sequences(b)
        out, _ = self.rnn(self.drop(self.emb(x)))
        logits = self.head(self.drop(out))
        return answer_loss(logits, y, b, per_token, lm=True)

    @torch.no_grad()
    def generate(self, b: Batch, max_new: int):
        packed = pack_padded_sequence(self.emb(b.prompt), b.prompt_len.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        last = out[torch.arange(out.shape[0], device=out.device), b.prompt_len - 1]

        def step(tok):
            nonlocal state
            o, state = self.rnn(self.emb(tok[:, None]), state)
            return self.head(o[:, -1])

        return greedy(self.head(last), step, max_new)
