"""Recurrent language model over the token stream <bos> input <sep> target <eos> (the decoder
layout, layouts.py), shared by the gru and lstm architectures, with their config, training defaults
and search space. Reading a prompt packs it, so padding never enters the recurrent state."""
from dataclasses import dataclass, field
from functools import cache

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from archs.common import DigitPlaces, check_sizes, check_vocab
from codec import PAD


@dataclass
class Config:
    d_model: int = 128
    n_layer: int = 1
    dropout: float = 0.0
    places: bool = False  # digit place embeddings (archs/common.py DigitPlaces)
    vocab_size: int = 0  # len(codec): settings.with_codec sets it
    digit_ids: list = field(default_factory=list)  # for places: the codec's ids of 0-9 and "." (settings.with_codec)
    point_id: int = -1

    def __post_init__(self):
        check_sizes(self)


# Training defaults for gru and lstm (train.py flags override them): the best trial of a hyper.py
# study on bracket 1min (docs/defaults.md).
TRAIN_DEFAULTS = {"lr": 6.4e-3, "batch_size": 64, "warmup": 0.044}
GROWN_BY_TASK = ()
LORA_TARGETS = {"rnn": ("rnn.",), "head": ("head.",), "emb": ("emb.",)}  # lora.py: name -> parameter name prefixes
# The ONNX export (onnxexport.py): no state tensor grows (h, c: one per layer), and step() cannot
# pack prompts in an exported graph, so there each call reads prompts of one length (onnxrun.py).
EXPORT = {"state_grows": {}, "prompts_of_one_length": True}


def prepare_export():
    """Before each ONNX export: torch's exporter lends aten.gru/lstm a loop that keeps the sequence
    length dynamic, only while it exports; the operators' dispatch cache outlives that, so a second
    export in one process would unroll the recurrence over the example's length (torch 2.13)."""
    for op in (torch.ops.aten.gru.input, torch.ops.aten.lstm.input):
        op._dispatch_cache.clear()


def search_space(trial):
    return {"model": {"d_model": trial.suggest_categorical("d_model", [64, 96, 128, 192, 256]),
                      "n_layer": trial.suggest_int("n_layer", 1, 3),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


def explain(model, prompt, answer) -> list[dict]:
    """What explain.py draws (archs.Arch): the hidden state of the last layer at every token the
    model reads to write answer after prompt, units ordered by the token where each peaks, so
    that units which track the same moment line up."""
    from archs.common import panel
    tokens = torch.cat((prompt, answer[:, :-1]), 1)
    x = model.emb(tokens) if model.places is None else model.emb(tokens) + model.places(tokens)
    out, _ = model.rnn(x)
    state = out[0].t()  # (units, T)
    order = torch.argsort(state.abs().argmax(1) * state.shape[0] + torch.arange(state.shape[0]))
    return [panel("hidden state (units by the token where each peaks)", "state", state[order][None],
                  [f"u{u}" for u in order.tolist()], tokens[0].tolist())]


@cache
def cpu_has_bf16_lstm() -> bool:
    """Whether this CPU's oneDNN has a bfloat16 LSTM kernel. It has one where the CPU has AVX512-BF16
    or AMX; elsewhere (AVX2 machines) nn.LSTM under CPU bfloat16 autocast raises "could not create
    a primitive descriptor". Where it has one, bf16 trains lstm faster (docs/defaults.md)."""
    try:
        with torch.autocast("cpu", torch.bfloat16):
            out, _ = nn.LSTM(8, 8, batch_first=True)(torch.zeros(1, 2, 8, requires_grad=True))
        out.float().sum().backward()
        return True
    except RuntimeError:
        return False


class RNNLM(nn.Module):
    layout = "decoder"

    def __init__(self, cfg, cell):
        super().__init__()
        check_vocab(cfg)
        self.cfg = cfg
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # Only the embedding is drawn from N(0, 0.02); the recurrent cell and the head keep PyTorch's
        # defaults (docs/defaults.md: better than the attention models' init_weights here).
        nn.init.normal_(self.emb.weight, std=0.02)
        self.rnn = rnn(cfg.d_model, cfg.d_model, cfg.n_layer, batch_first=True,
                       dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.places = DigitPlaces(cfg.d_model, cfg.vocab_size, cfg.digit_ids, cfg.point_id) if cfg.places else None

    def forward(self, tokens):
        """Logits (B, T, V) of the next token at every position (right padding is harmless here)."""
        x = self.emb(tokens) if self.places is None else self.emb(tokens) + self.places(tokens)
        x = self.drop(x)
        if (isinstance(self.rnn, nn.LSTM) and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and not cpu_has_bf16_lstm()):  # no bf16 kernel: this cell alone runs in float32
            with torch.autocast("cpu", enabled=False):
                out, _ = self.rnn(x.float())
        else:
            out, _ = self.rnn(x)
        return self.head(self.drop(out))

    def step(self, tokens, state=None):
        """Logits (B, T, V) of tokens that continue state, and the state after them. With no state
        the tokens are right-padded prompts, read packed so that the state is each row's after
        its last real token (an exported graph cannot pack: there, rows of one length per call,
        onnxrun.py groups them). The state is a dict of batch-first tensors (export.py makes them
        the step graph's inputs and outputs): h (B, n_layer, d_model), for lstm also c, and with
        places count (B,), the digits of the number being written."""
        if state is None:
            x = self.emb(tokens) if self.places is None else self.emb(tokens) + self.places(tokens)
            if torch.compiler.is_exporting():
                out, hidden = self.rnn(x)
            else:
                lengths = (tokens != PAD).sum(1).clamp(min=1).cpu()
                out, hidden = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
            count = None if self.places is None else torch.zeros_like(tokens[:, 0])
        else:
            x, count = self.emb(tokens), state.get("count")
            if self.places is not None:
                places, count = self.places.answer(tokens, count)
                x = x + places
            hidden = state["h"].transpose(0, 1).contiguous()
            if "c" in state:
                hidden = (hidden, state["c"].transpose(0, 1).contiguous())
            out, hidden = self.rnn(x, hidden)
        hidden = hidden if isinstance(hidden, tuple) else (hidden,)
        state = {name: t.transpose(0, 1) for name, t in zip("hc", hidden)}
        return self.head(out), state if count is None else {**state, "count": count}
