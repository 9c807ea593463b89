"""GPT-style decoder-only transformer: causal self-attention over <bos> input <sep> target <eos>
(the decoder layout, layouts.py); generation steps with a key/value cache."""
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from archs.common import (
    ATTENTION_EXPORT,
    ATTENTION_LORA_TARGETS,
    Block,
    DigitPlaces,
    Fire,
    Positions,
    bias_panel,
    check_attention,
    check_vocab,
    init_weights,
    layer_caches,
    panel,
    recording,
    stack_caches,
)
from codec import PAD


@dataclass
class Config:
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dropout: float = 0.0
    pos: str = "alibi"  # alibi | rope | none | fire (see archs/common.py)
    places: bool = False  # digit place embeddings (archs/common.py DigitPlaces)
    place_bias: int = 0  # > 0: attention bias by digit place difference, clamped to +-place_bias (DigitPlaces)
    vocab_size: int = 0  # len(codec): settings.with_codec sets it
    digit_ids: list = field(default_factory=list)  # for places, place_bias: the codec's ids of 0-9 and "." (settings.with_codec)
    point_id: int = -1

    def __post_init__(self):
        check_attention(self)


# Training defaults for this architecture (train.py flags override them; docs/defaults.md).
TRAIN_DEFAULTS = {"lr": 3e-3, "batch_size": 64}
LORA_TARGETS = ATTENTION_LORA_TARGETS
EXPORT = ATTENTION_EXPORT
GROWN_BY_TASK = ()


def task_defaults(task) -> dict:
    """A digit place bias (place_bias=2, archs/common.py DigitPlaces) where answers are written
    digit by digit from the lowest place; no position encoding (NoPE: the causal mask alone) on
    nested tasks, where it generalises to longer inputs better than ALiBi (docs/defaults.md)."""
    if task.traits().digit_aligned:
        return {"place_bias": 2}
    if task.traits().nested:
        return {"pos": "none"}
    return {}


def task_train_defaults(task) -> dict:
    return {}


def explain(model, prompt, answer) -> list[dict]:
    """What explain.py draws (archs.Arch): the causal self-attention of every layer and head over
    the stream the model reads to write answer after prompt, and the position bias (ALiBi, FIRE)."""
    tokens = torch.cat((prompt, answer[:, :-1]), 1)
    with recording(model) as weights:
        model(tokens)
    ids = tokens[0].tolist()
    return [*(panel(f"layer {i + 1}: self-attention", "attention", w[0], ids, ids) for i, w in enumerate(weights)),
            *bias_panel(model._positions(), tokens, "position bias")]


def search_space(trial):
    d_model = trial.suggest_categorical("d_model", [32, 64, 96, 128])
    return {"model": {"n_layer": trial.suggest_int("n_layer", 1, 4),
                      "n_head": trial.suggest_categorical("n_head", [2, 4]),
                      "d_model": d_model,
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


class Model(nn.Module):
    layout = "decoder"

    def __init__(self, cfg: Config):
        super().__init__()
        check_vocab(cfg)
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.fire = Fire(cfg.n_head) if cfg.pos == "fire" else None
        self.places = None
        if cfg.places or cfg.place_bias:
            self.places = DigitPlaces(cfg.d_model, cfg.vocab_size, cfg.digit_ids, cfg.point_id, embed=cfg.places,
                                      n_head=cfg.n_head, reach=cfg.place_bias)
        init_weights(self)
        self.head.weight = self.emb.weight  # tied input and output embeddings

    def _positions(self, state=None):
        return Positions(self.cfg.pos, self.cfg.n_head, self.cfg.d_model // self.cfg.n_head, causal=True,
                         k_pos=None if state is None else state["pos"], k_valid=None if state is None else state["valid"], fire=self.fire)

    def _run(self, tokens, positions, caches=None, places=None, key_places=None):
        """places (B, T): the tokens' digit places; key_places (B, S): those of every key so far."""
        bias, rope = positions.step(tokens != PAD)
        x = self.emb(tokens)
        if self.cfg.places:
            x = x + self.places.embed(places)
        if self.cfg.place_bias:
            bias = bias + self.places.attn_bias(places, key_places)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, bias, rope=rope, cache=None if caches is None else caches[i])
        return self.head(self.ln_f(x))

    def forward(self, tokens):
        """Logits (B, T, V) of the next token at every position."""
        places = None if self.places is None else self.places.places(tokens)
        return self._run(tokens, self._positions(), places=places, key_places=places)

    def step(self, tokens, state=None):
        """Logits (B, T, V) of tokens that continue state, and the state after them. With no state
        the tokens are right-padded prompts (padding keys are masked and positions count real
        tokens only, so the next token continues each row). The state is a dict of batch-first
        tensors (export.py makes them the step graph's inputs and outputs): k, v (B, n_layer, H,
        S, hd) the keys and values so far, pos and valid (B, S) their positions and which are
        real; with places or place_bias count (B,), the digits of the number being written, and
        with place_bias place (B, S), the keys' digit places."""
        if self.places is None:
            places = count = None
        elif state is None:
            places, count = self.places.places(tokens), torch.zeros_like(tokens[:, 0])
        else:
            places, count = self.places.answer_places(tokens, state["count"])
        key_places = places if state is None or "place" not in state else torch.cat((state["place"], places), 1)
        positions, caches = self._positions(state), layer_caches(state, len(self.blocks))
        logits = self._run(tokens, positions, caches, places, key_places)
        state = {**stack_caches(caches), "pos": positions.k_pos, "valid": positions.k_valid}
        if self.cfg.place_bias:
            state["place"] = key_places
        return logits, state if count is None else {**state, "count": count}
