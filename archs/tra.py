"""Transformer encoder-decoder: a bidirectional encoder reads <bos> input <sep>; a causal decoder
with cross-attention writes target <eos> after a <bos> (the encdec layout, layouts.py). Decoding
steps cache the decoder's keys and values and compute the cross-attention keys/values once."""
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
    cross_bias,
    init_weights,
    layer_caches,
    panel,
    recording,
    stack_caches,
)
from codec import BOS, PAD


@dataclass
class Config:
    # Defaults: the best trial of a hyper.py study on bracket 1min (docs/defaults.md).
    n_layer: int = 1  # encoder layers; the decoder has as many
    n_head: int = 2
    d_model: int = 32
    dropout: float = 0.0
    pos: str = "alibi"  # alibi | rope | none | fire (see archs/common.py)
    places: bool = False  # digit place embeddings (archs/common.py DigitPlaces)
    place_bias: int = 0  # > 0: cross-attention bias by digit place difference, clamped to +-place_bias (DigitPlaces)
    vocab_size: int = 0  # len(codec): settings.with_codec sets it
    digit_ids: list = field(default_factory=list)  # for places, place_bias: the codec's ids of 0-9 and "." (settings.with_codec)
    point_id: int = -1

    def __post_init__(self):
        check_attention(self)


# Training defaults for this architecture (train.py flags override them).
TRAIN_DEFAULTS = {"lr": 1.6e-3, "batch_size": 128, "warmup": 0.09}
LORA_TARGETS = ATTENTION_LORA_TARGETS
EXPORT = ATTENTION_EXPORT
GROWN_BY_TASK = ()
ALIASES = ("transformer", "encoder-decoder")


def task_defaults(task) -> dict:
    """Two layers each side at width 64 where the task multiplies (the partial products need the
    second layer); a digit place bias on the cross-attention (place_bias=2, archs/common.py
    DigitPlaces) where answers are written digit by digit from the lowest place (docs/defaults.md)."""
    if task.traits().multiplies:
        return {"d_model": 64, "n_layer": 2}
    if task.traits().digit_aligned:
        return {"place_bias": 2}
    return {}


def task_train_defaults(task) -> dict:
    return {}


def explain(model, prompt, answer) -> list[dict]:
    """What explain.py draws (archs.Arch): the encoder's self-attention over the prompt, the
    decoder's causal self-attention over what it has written and its cross-attention to the
    prompt, every layer and head; and the encoder's position bias (ALiBi, FIRE)."""
    tgt = torch.cat((torch.full_like(answer[:, :1], BOS), answer[:, :-1]), 1)
    with recording(model) as weights:
        model(prompt, tgt)
    n, src, dec = model.cfg.n_layer, prompt[0].tolist(), tgt[0].tolist()
    panels = [panel(f"encoder layer {i + 1}: self-attention", "attention", weights[i][0], src, src) for i in range(n)]
    for i in range(n):
        panels += [panel(f"decoder layer {i + 1}: self-attention", "attention", weights[n + 2 * i][0], dec, dec),
                   panel(f"decoder layer {i + 1}: cross-attention", "attention", weights[n + 2 * i + 1][0], dec, src)]
    return panels + bias_panel(model._positions(causal=False), prompt, "encoder position bias")


def search_space(trial):
    return {"model": {"n_layer": trial.suggest_int("n_layer", 1, 3),
                      "n_head": trial.suggest_categorical("n_head", [2, 4]),
                      "d_model": trial.suggest_categorical("d_model", [32, 64, 96, 128]),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


class Model(nn.Module):
    layout = "encdec"

    def __init__(self, cfg: Config):
        super().__init__()
        check_vocab(cfg)
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)  # shared by encoder, decoder and head
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.n_layer))
        self.decoder = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout, cross=True) for _ in range(cfg.n_layer))
        self.ln_enc, self.ln_dec = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.pos == "fire":  # one per attention stack: the encoder's, the decoder's and the cross-attention's
            self.enc_fire, self.dec_fire, self.cross_fire = Fire(cfg.n_head, bidirectional=True), Fire(cfg.n_head), Fire(cfg.n_head)
        else:
            self.enc_fire = self.dec_fire = self.cross_fire = None
        self.places = None
        if cfg.places or cfg.place_bias:
            self.places = DigitPlaces(cfg.d_model, cfg.vocab_size, cfg.digit_ids, cfg.point_id, embed=cfg.places,
                                      n_head=cfg.n_head, reach=cfg.place_bias)
        init_weights(self)
        self.head.weight = self.emb.weight

    def _positions(self, causal, state=None):
        return Positions(self.cfg.pos, self.cfg.n_head, self.cfg.d_model // self.cfg.n_head, causal,
                         k_pos=None if state is None else state["pos"], k_valid=None if state is None else state["valid"],
                         fire=self.dec_fire if causal else self.enc_fire)

    def _encode(self, src):
        """The memory (B, Ts, C), which of it is real, and its digit places (None without places)."""
        valid = src != PAD
        bias, rope = self._positions(causal=False).step(valid)
        places = None if self.places is None else self.places.places(src, "prompt")
        x = self.emb(src) if not self.cfg.places else self.emb(src) + self.places.embed(places)
        x = self.drop(x)
        for block in self.encoder:
            x = block(x, bias, rope=rope)
        return self.ln_enc(x), valid, places

    def _decode(self, tokens, mem, mem_valid, positions, caches=None, places=None, mem_places=None):
        """places (B, T): the tokens' digit places; mem_places (B, Ts): the memory's."""
        bias, rope = positions.step(tokens != PAD)
        x = self.drop(self.emb(tokens) if not self.cfg.places else self.emb(tokens) + self.places.embed(places))
        mb = cross_bias(self.cfg.pos, self.cfg.n_head, positions.last, mem_valid, self.cross_fire, n_dec=positions.k_pos.shape[1])
        if self.cfg.place_bias:
            mb = mb + self.places.attn_bias(places, mem_places)
        for i, block in enumerate(self.decoder):
            x = block(x, bias, rope=rope, mem=mem, mem_bias=mb, cache=None if caches is None else caches[i])
        return self.head(self.ln_dec(x))

    def forward(self, src, tgt):
        """Logits (B, Tt, V) of the next target token at every target position (teacher forcing)."""
        mem, valid, mem_places = self._encode(src)
        places = None if self.places is None else self.places.places(tgt, "answer")
        return self._decode(tgt, mem, valid, self._positions(causal=True), places=places, mem_places=mem_places)

    def encode(self, src):
        """The decoding state after reading right-padded sources: their memory mem (B, Ts, C) and
        which of it is real, mem_valid (B, Ts); with place_bias its digit places, mem_place (B, Ts)."""
        mem, valid, places = self._encode(src)
        return {"mem": mem, "mem_valid": valid, **({"mem_place": places} if self.cfg.place_bias else {})}

    def step(self, tokens, state):
        """Decoder logits for tokens (B, T) that continue state, and the state after them: a dict
        of batch-first tensors (export.py makes them the step graph's inputs and outputs):
        mem_k, mem_v (B, n_layer, H, Ts, hd) the memory's keys and values, computed at the first
        step; mem_valid; k, v (B, n_layer, H, S, hd) the decoder's keys and values so far, pos
        and valid (B, S) their positions and which are real; with places or place_bias count (B,),
        the digits of the number being written; with place_bias mem_place as encode gave it."""
        places = count = None
        if self.places is not None:
            places, count = self.places.answer_places(tokens, state.get("count"))
        positions = self._positions(causal=True, state=state if "pos" in state else None)
        caches = layer_caches(state, len(self.decoder))
        mem_places = state.get("mem_place")
        logits = self._decode(tokens, state.get("mem"), state["mem_valid"], positions, caches, places, mem_places)
        state = {**stack_caches(caches), "mem_valid": state["mem_valid"], "pos": positions.k_pos, "valid": positions.k_valid}
        if mem_places is not None:
            state["mem_place"] = mem_places
        return logits, state if count is None else {**state, "count": count}
