"""BERT-style encoder-only transformer. The input is <bos> input <sep> followed by n_slots <mask>
tokens (output slots); a bidirectional encoder fills the slots, trained with a masked-token
objective on them. Each slot also gets a learned slot-index embedding, so slot k knows it must
produce the k-th answer token (then <eos>, then <pad> in the slots after it). No causal mask.

With `refine=True` training and decoding follow Mask-Predict (Ghazvininejad et al.,
2019): each training example reveals a random share of its answer slots and the loss is taken on
the rest, so the model learns to complete partial answers; decoding starts from all-<mask> and
fills the surest slot of each row per pass until the answer up to its <eos> is complete (at most
n_slots passes, any order). The default fills every slot in one pass and cuts at the first
<eos>; refine learns more slowly and is kept as a switch for longer budgets (docs/defaults.md).
"""
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
    check_attention,
    check_vocab,
    init_weights,
    panel,
    recording,
    require,
)
from codec import MASK, PAD


@dataclass
class Config:
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dropout: float = 0.0
    pos: str = "alibi"  # alibi | rope | none | fire (see archs/common.py)
    n_slots: int = 16  # task_defaults sets it to the task's longest answer + 1
    refine: bool = False  # Mask-Predict training and decoding (see above); False: one pass
    places: bool = False  # digit place embeddings of the prompt (archs/common.py DigitPlaces)
    place_bias: int = 0  # > 0: slot k reads the prompt's digits by place difference from place k (DigitPlaces)
    vocab_size: int = 0  # len(codec): settings.with_codec sets it
    digit_ids: list = field(default_factory=list)  # for places, place_bias: the codec's ids of 0-9 and "." (settings.with_codec)
    point_id: int = -1

    def __post_init__(self):
        check_attention(self)
        require(self.n_slots >= 1, f"n_slots must be at least 1, got {self.n_slots}")


# Training defaults for this architecture (train.py flags override them; docs/defaults.md).
TRAIN_DEFAULTS = {"lr": 3e-3, "batch_size": 64}
LORA_TARGETS = ATTENTION_LORA_TARGETS
EXPORT = ATTENTION_EXPORT
GROWN_BY_TASK = ("n_slots",)
ALIASES = ("bert",)


def task_defaults(task) -> dict:
    """Answer slots for the task's longest answer and its <eos>; a digit place bias (place_bias=2,
    as gpt's) where answers are written digit by digit from the lowest place: answer slot k reads
    the prompt's digits by their place relative to place k (archs/common.py DigitPlaces)."""
    slots = {"n_slots": task.max_target_len() + 1}
    return {**slots, "place_bias": 2} if task.traits().digit_aligned else slots


def task_train_defaults(task) -> dict:
    return {}


def explain(model, prompt, answer) -> list[dict]:
    """What explain.py draws (archs.Arch): every layer and head's attention of the answer slots
    over the prompt and the slots, filled in one pass."""
    from layouts import slot_inputs
    x, slot_pos = slot_inputs(prompt, (prompt != PAD).sum(1), model.cfg.n_slots)
    with recording(model) as weights:
        model(x, slot_pos)
    slots, cols = [f"slot {k + 1}" for k in range(slot_pos.shape[1])], x[0].tolist()
    for k, i in enumerate(slot_pos[0].tolist()):
        cols[i] = slots[k]
    return [panel(f"layer {i + 1}: the slots' attention", "attention", w[0][:, slot_pos[0]], slots, cols) for i, w in enumerate(weights)]


def search_space(trial):
    return {"model": {"n_layer": trial.suggest_int("n_layer", 1, 4),
                      "n_head": trial.suggest_categorical("n_head", [2, 4]),
                      "d_model": trial.suggest_categorical("d_model", [32, 64, 96, 128]),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.2)},
            "train": {"lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
                      "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
                      "warmup": trial.suggest_float("warmup", 0.0, 0.1)}}


class Model(nn.Module):
    layout = "slots"  # training and decoding, refine included: layouts.py

    def __init__(self, cfg: Config):
        super().__init__()
        check_vocab(cfg)
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.slot_emb = nn.Embedding(cfg.n_slots, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.fire = Fire(cfg.n_head, bidirectional=True) if cfg.pos == "fire" else None
        self.places = None
        if cfg.places or cfg.place_bias:
            self.places = DigitPlaces(cfg.d_model, cfg.vocab_size, cfg.digit_ids, cfg.point_id, embed=cfg.places,
                                      n_head=cfg.n_head, reach=cfg.place_bias)
        init_weights(self)
        self.head.weight = self.emb.weight

    def forward(self, x, slot_pos):
        """Logits (B, n_slots, V) of the slots of x at slot_pos (layouts.slot_inputs)."""
        positions = Positions(self.cfg.pos, self.cfg.n_head, self.cfg.d_model // self.cfg.n_head, causal=False, fire=self.fire)
        bias, rope = positions.step(x != PAD)
        h = self.emb(x)
        if self.places is not None:  # the prompt's digit places; the slots (answer tokens under refine) have none
            places = self.places.places(x.scatter(1, slot_pos, MASK), "prompt")
            if self.cfg.places:
                h = h + self.places.embed(places)
            if self.cfg.place_bias:  # slot k writes the answer's place-(k+1) digit (reversed answers)
                slot_places = torch.arange(slot_pos.shape[1], device=x.device).expand_as(slot_pos)
                bias = bias + self.places.attn_bias(places.scatter(1, slot_pos, slot_places), places)
        slots = self.slot_emb.weight[None, : slot_pos.shape[1]].expand(h.shape[0], -1, -1)
        h = self.drop(h.scatter_add(1, slot_pos[..., None].expand_as(slots), slots))
        for block in self.blocks:
            h = block(h, bias, rope=rope)
        h = h.gather(1, slot_pos[..., None].expand(-1, -1, h.shape[-1]))
        return self.head(self.ln_f(h))
