"""Pieces shared by the attention models (tra, ber, gpt).

Position encoding. Default is ALiBi (Press et al., "Train Short, Test Long", 2022): no position
embedding at all, each head adds -slope * |i - j| to its attention scores. It depends only on
relative distance, so a model trained on inputs of length 1..30 meets nothing new at length 60,
and the heads with small slopes still see the whole sequence (needed to find an opener far back).
`rope` (rotary, relative but with frequencies never seen past the training length), `none`
(NoPE: a causal mask alone lets a decoder count positions) and `fire` (FIRE, Li et al.,
"Functional Interpolation for Relative Positions", 2023: a learned bias of the distance divided by
the query's position, so longer inputs map into the range training saw; class Fire) are switches;
gpt takes `none` on nested tasks (archs/gpt.py task_defaults). The bench presets pos-bracket-*
compare them; why tra and ber keep ALiBi: docs/defaults.md.

A distance penalty is symmetric, so in a bidirectional stack (tra's encoder, ber) ALiBi alone
cannot tell left from right; there half the heads attend to the left (and themselves) and half
to the right, and each half gets the full range of slopes (from local to nearly flat), so both
directions have a head that sees the whole input.

Masks. Every model builds one additive bias per forward (B, H, Tq, Tk) from token positions and a
key-validity mask, shared by all layers. A query always sees itself, so no row is fully masked
(padding queries would otherwise produce NaN that leaks through the values of later layers).
"""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import PAD, SEP
from errors import SettingsError

POS_KINDS = ("alibi", "rope", "none", "fire")
# LoRA targets (lora.py) of the attention models: name -> prefixes of the parameter names adapted
# (no `head`: their output head is the embedding, tied)
ATTENTION_LORA_TARGETS = {"attn": ("attn.", "xattn."), "mlp": ("mlp.",), "emb": ("emb.",)}
# What the ONNX export (onnxexport.py) needs of an attention model's decoding state: the axis of
# each state tensor (batch first) that grows, with the tokens so far ("past": keys, values,
# positions, digit places) or with the source ("length": the encoder's keys, values, validity
# and places); and that an exported graph reads prompts of any lengths in one call.
ATTENTION_EXPORT = {"state_grows": {"k": (3, "past"), "v": (3, "past"), "pos": (1, "past"), "valid": (1, "past"),
                                    "place": (1, "past"), "mem_k": (3, "length"), "mem_v": (3, "length"),
                                    "mem_valid": (1, "length"), "mem_place": (1, "length")},
                    "prompts_of_one_length": False}


def require(ok: bool, message: str):
    """A Config's check of one of its values: SettingsError (one line) when it fails."""
    if not ok:
        raise SettingsError(message)


MAX_WIDTH = 65536  # the widest d_model (or cell) a Config takes; archs.build also caps the parameter count
MAX_LAYERS = 1024  # the deepest n_layer: what is built is checked before any weight exists (archs.build)


def check_sizes(cfg):
    """The checks every Config shares: sizes from 1 to MAX_WIDTH / MAX_LAYERS, a dropout probability."""
    require(1 <= cfg.d_model <= MAX_WIDTH and 1 <= cfg.n_layer <= MAX_LAYERS,
            f"d_model and n_layer must be from 1 to {MAX_WIDTH} and {MAX_LAYERS}, got {cfg.d_model} and {cfg.n_layer}")
    require(0 <= cfg.dropout < 1, f"dropout is a probability below 1, got {cfg.dropout}")


def check_attention(cfg):
    """A Config of an attention model: check_sizes, heads that divide the width (an even head
    width for rope), a known position encoding, a place bias of at least 0."""
    check_sizes(cfg)
    require(cfg.n_head >= 1 and cfg.d_model % cfg.n_head == 0,
            f"n_head must divide d_model: {cfg.n_head} heads do not divide width {cfg.d_model}")
    require(cfg.pos in POS_KINDS, f"pos must be one of {', '.join(POS_KINDS)}, got {cfg.pos!r}")
    require(cfg.pos != "rope" or (cfg.d_model // cfg.n_head) % 2 == 0,
            f"rope needs an even head width, got d_model {cfg.d_model} / n_head {cfg.n_head}")
    require(cfg.place_bias >= 0, f"place_bias must be at least 0, got {cfg.place_bias}")


def positions(valid: torch.Tensor) -> torch.Tensor:
    """Position of each token counting only valid ones (left padding does not shift positions)."""
    return (valid.long().cumsum(1) - 1).clamp(min=0)


def alibi_slopes(n_head: int) -> torch.Tensor:
    return torch.tensor([2 ** (-8 * (i + 1) / n_head) for i in range(n_head)])


def head_slopes(n_head: int, bidirectional: bool) -> torch.Tensor:
    """ALiBi slopes per head; a bidirectional stack repeats the geometric range in both halves."""
    if not bidirectional or n_head < 2:
        return alibi_slopes(n_head)
    half = alibi_slopes(n_head - n_head // 2)
    return torch.cat((half[: n_head // 2], half))


class Fire(nn.Module):
    """FIRE: head h adds f(psi(|i - j|) / psi(max(L, n)))[h] to its scores, psi(x) = log(c x + 1),
    f a two-layer MLP, c > 0 and the threshold L learned. n is the query's position + 1 in a causal
    stack (and for cross-attention, where the decoder stands after the input), the number of real
    keys in a bidirectional one; there the sign of i - j is a second input, to tell left from right.

    The bias depends only on the integers (i - j, n), both below a bound the shapes give (see
    forward): f runs once per possible pair, a table of (bound + 1)^2 rows (twice that
    bidirectionally), and the bias is gathered from it, rather than f running on B x Tq x Tk."""

    def __init__(self, n_head, bidirectional=False, hidden=32):
        super().__init__()
        self.bidirectional = bidirectional
        self.mlp = nn.Sequential(nn.Linear(1 + bidirectional, hidden), nn.ReLU(), nn.Linear(hidden, n_head))
        self.log_c = nn.Parameter(torch.tensor(math.log(0.1)))
        self.L = nn.Parameter(torch.tensor(8.0))

    def forward(self, q_pos, k_pos, k_valid, bound):
        """The bias (B, H, Tq, Tk) for queries at q_pos (B, Tq) and keys at k_pos (B, Tk); bound: an
        int no |i - j| and no n exceeds (self-attention: Tk, as positions count keys)."""
        d = q_pos[:, :, None] - k_pos[:, None, :]
        n = k_valid.sum(1)[:, None, None] if self.bidirectional else q_pos[:, :, None] + 1
        dv = torch.arange(-bound if self.bidirectional else 0, bound + 1, device=d.device)
        table = self.f(dv[:, None], torch.arange(bound + 1, device=d.device)[None, :])  # (len(dv), bound + 1, H)
        row = (d + bound if self.bidirectional else d.abs()) * (bound + 1) + n
        return table.flatten(0, 1).t()[:, row].transpose(0, 1)  # heads first: the fastest gather here

    def f(self, d, n):
        """f's output (..., H) at distances d and lengths n (integer tensors that broadcast)."""
        d, n = torch.broadcast_tensors(d, n)
        c = self.log_c.exp()
        x = torch.log1p(c * d.abs().float()) / torch.log1p(c * torch.maximum(n.float(), self.L.abs() + 1))
        x = torch.stack((x, d.sign().float()), -1) if self.bidirectional else x[..., None]
        return self.mlp(x)


def attn_bias(pos_kind, n_head, q_pos, k_pos, k_valid, causal, device, fire=None):
    """Additive attention bias (B, H|1, Tq, Tk): ALiBi distances (or FIRE's learned bias, from the
    module fire) plus -inf where a key is hidden. Causality and self-visibility are by index;
    q_pos/k_pos are the tokens' positions."""
    Tq, Tk = q_pos.shape[1], k_pos.shape[1]
    q_idx = torch.arange(Tk - Tq, Tk, device=device)  # queries are the last Tq keys
    k_idx = torch.arange(Tk, device=device)
    allowed = k_valid[:, None, :].expand(-1, Tq, -1)
    left = k_idx[None, None, :] <= q_idx[None, :, None]
    if causal:
        allowed = allowed & left
    allowed = allowed | (k_idx[None, None, :] == q_idx[None, :, None])
    bias = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, float("-inf"))[:, None]
    bidirectional = pos_kind == "alibi" and not causal and n_head >= 2
    if bidirectional:
        # |i - j| alone cannot tell left from right: half the heads look left, half look right.
        self_ = k_idx[None, None, :] == q_idx[None, :, None]
        side = torch.stack([left | self_, ~left | self_])  # (2, 1, Tq, Tk)
        heads = side[(torch.arange(n_head, device=device) >= n_head // 2).long()]  # (H, 1, Tq, Tk)
        bias = bias.masked_fill(~heads.transpose(0, 1), float("-inf"))
    if pos_kind == "alibi":
        dist = (q_pos[:, :, None] - k_pos[:, None, :]).abs().float()
        bias = bias - head_slopes(n_head, bidirectional).to(device)[None, :, None, None] * dist[:, None]
    if pos_kind == "fire":
        bias = bias + fire(q_pos, k_pos, k_valid, bound=Tk)
    return bias


def cross_bias(pos_kind, n_head, q_pos, k_valid, fire=None, n_dec=0):
    """Bias for cross-attention from decoder tokens to a right-padded memory: hide padding and,
    with ALiBi, penalise distance as if decoder token j stood right after the input (so the first
    answer token looks hardest at the end of the input, where the innermost open bracket is).
    n_dec (FIRE): the decoder's tokens so far, cached ones included (q_pos are below it)."""
    B, Tk = k_valid.shape
    bias = torch.zeros(B, 1, q_pos.shape[1], Tk, device=k_valid.device).masked_fill(~k_valid[:, None, None, :], float("-inf"))
    if pos_kind == "alibi":
        q_abs = k_valid.sum(1, keepdim=True) + q_pos
        dist = (q_abs[:, :, None] - torch.arange(Tk, device=k_valid.device)[None, None, :]).abs().float()
        bias = bias - alibi_slopes(n_head).to(k_valid.device)[None, :, None, None] * dist[:, None]
    if pos_kind == "fire":
        k_pos = torch.arange(Tk, device=k_valid.device).expand(B, -1)
        bias = bias + fire(k_valid.sum(1, keepdim=True) + q_pos, k_pos, k_valid, bound=Tk + n_dec)
    return bias


def rope_tables(pos: torch.Tensor, head_dim: int):
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=pos.device).float() / head_dim))
    ang = pos.float()[:, None, :, None] * inv  # (B, 1, T, hd/2)
    return ang.cos(), ang.sin()


def apply_rope(x, tables):
    cos, sin = tables
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    record = None  # a list while `recording`: each forward appends its attention weights (B, H, Tq, Tk)

    def __init__(self, d_model, n_head, dropout, cross=False):
        super().__init__()
        self.n_head, self.dropout, self.cross = n_head, dropout, cross
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.o = nn.Linear(d_model, d_model)

    def _heads(self, t):
        B, T, C = t.shape
        return t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def forward(self, x, bias, mem=None, rope=None, cache=None):
        """x (B, Tq, C). mem: the memory a cross-attention reads (else x is). rope: rotary tables for
        the new tokens (queries and their own keys). cache: the layer's dict kept across decoding
        steps: self-attention appends the new keys/values to k, v (B, H, S, hd); cross-attention
        computes mem_k, mem_v once."""
        q = self._heads(self.q(x))
        if self.cross and cache is not None and "mem_k" in cache:
            k, v = cache["mem_k"], cache["mem_v"]
        else:
            k, v = (self._heads(t) for t in self.kv(mem if self.cross else x).chunk(2, dim=-1))
            if rope is not None:
                q, k = apply_rope(q, rope), apply_rope(k, rope)
            if cache is not None and self.cross:
                cache["mem_k"], cache["mem_v"] = k, v
            elif cache is not None:
                if "k" in cache:
                    k, v = torch.cat((cache["k"], k), 2), torch.cat((cache["v"], v), 2)
                cache["k"], cache["v"] = k, v
        if self.record is not None:  # explain.py's path: the weights spelled out, the same output
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + (0 if bias is None else bias), dim=-1)
            self.record.append(w.detach())
            y = w @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        return self.o(y.transpose(1, 2).flatten(2))


@contextlib.contextmanager
def recording(model):
    """Within it, every Attention of model computes its weights explicitly (softmax of q k^T /
    sqrt(d) plus the bias: what the fused kernel computes) and appends them, (B, H, Tq, Tk) in
    the order they run, to the list it yields. Outside it the fused kernel runs, so training,
    decoding and exported graphs never pay for the weights."""
    found = [m for m in model.modules() if isinstance(m, Attention)]
    weights = []
    for m in found:
        m.record = weights
    try:
        yield weights
    finally:
        for m in found:
            m.record = None


def panel(name: str, kind: str, values, rows: list, cols: list) -> dict:
    """One picture of an architecture's explain(): values (H, R, C) for H heads (1 for a state),
    rows and cols the labels of its axes: token ids (explain.py writes their symbols) or text."""
    return {"name": name, "kind": kind, "values": values.detach().float().cpu(), "rows": rows, "cols": cols}


def bias_panel(positions: "Positions", tokens, name: str) -> list[dict]:
    """The position bias of an attention stack over tokens (1, T) (ALiBi's distances, FIRE's learned
    function, -inf where a key is hidden), per head, as explain() shows it beside the weights; none
    for rope or no encoding, which add nothing to the scores."""
    if positions.kind not in ("alibi", "fire"):
        return []
    bias, _ = positions.step(tokens != PAD)
    ids = tokens[0].tolist()
    return [panel(name, "bias", bias[0].expand(positions.n_head, -1, -1), ids, ids)]


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, d_model, n_head, dropout, cross=False):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d_model), Attention(d_model, n_head, dropout)
        self.ln_x, self.xattn = (nn.LayerNorm(d_model), Attention(d_model, n_head, dropout, cross=True)) if cross else (None, None)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias, rope=None, mem=None, mem_bias=None, cache=None):
        x = x + self.drop(self.attn(self.ln1(x), bias, rope=rope, cache=cache))
        if self.xattn is not None:
            x = x + self.drop(self.xattn(self.ln_x(x), mem_bias, mem=mem, cache=cache))
        return x + self.mlp(self.ln2(x))


class Positions:
    """Per-row positions and validity of every key seen so far, for one attention stack; a
    decoding state's pos and valid (B, S) when continuing one."""

    def __init__(self, kind, n_head, head_dim, causal, k_pos=None, k_valid=None, fire=None):
        self.kind, self.n_head, self.head_dim, self.causal, self.fire = kind, n_head, head_dim, causal, fire
        self.k_pos, self.k_valid, self.last = k_pos, k_valid, None

    def step(self, valid_new):
        """Register new tokens (B, T) and return (bias, rope) for their queries."""
        start = None if self.k_pos is None else self.k_pos.max(1, keepdim=True).values + 1
        new_pos = positions(valid_new) if start is None else start + torch.arange(valid_new.shape[1], device=valid_new.device)
        self.k_pos = new_pos if self.k_pos is None else torch.cat((self.k_pos, new_pos), 1)
        self.k_valid = valid_new if self.k_valid is None else torch.cat((self.k_valid, valid_new), 1)
        self.last = new_pos
        bias = attn_bias(self.kind, self.n_head, new_pos, self.k_pos, self.k_valid, self.causal, valid_new.device, self.fire)
        return bias, rope_tables(new_pos, self.head_dim) if self.kind == "rope" else None


def layer_caches(state, n_layer):
    """The per-layer cache dicts of a decoding state: its k, v, mem_k, mem_v (B, n_layer, H, S, hd)
    split by layer (empty dicts when the state has none)."""
    keys = [k for k in ("k", "v", "mem_k", "mem_v") if state is not None and k in state]
    return [{k: state[k][:, i] for k in keys} for i in range(n_layer)]


def stack_caches(caches):
    """The inverse of layer_caches: {name: (B, n_layer, H, S, hd)}."""
    return {k: torch.stack([c[k] for c in caches], 1) for k in caches[0]}


def init_weights(module):
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def check_vocab(cfg):
    assert cfg.vocab_size > 0, "vocab_size comes from the run's codec: archs.build(arch, {'vocab_size': len(codec), ...})"


class DigitPlaces(nn.Module):
    """Abacus embeddings (McLeish et al., 2024, "Transformers Can Do Arithmetic with the Right
    Embeddings"): each digit gets an embedding of its place in its number, counted from the
    number's least significant end: from the right in a prompt (numbers are written most
    significant digit first), from the left in an answer being written (a reversed answer starts
    with its least significant digit, so the place of each new digit is known as it is written).
    A decimal point continues its number without a place of its own; 0 means "not a digit". In
    training each example's places are shifted by a random offset in 0..max_offset, so that the
    embeddings of the places longer numbers need are trained too, and what the model learns is to
    match places rather than to count them.

    The same places can instead steer attention (`reach` > 0: `place_bias` of gpt, of tra's
    cross-attention and of ber, whose answer slot k stands at place k): each head adds a learned
    bias for the difference between a digit key's place and the query's place (clamped to
    -reach..reach) to its attention scores, as ALiBi adds one for the distance in tokens. A query
    writing the place-p digit of a reversed answer sits on the place-(p-1) digit (or on <sep>,
    place 0), so one bias entry lets it read both operands' place-p digits and another the
    place-(p-1) ones for the carry, wherever they stand and however long the numbers are: a
    difference never seen in training is clamped to one that was. Embeddings of places are then
    optional (`embed`); what they add is which place it is, which the bias does not need.

    digit_ids, point_id: the ids of 0-9 and of the decimal point in the run's codec (the model's
    config holds them; settings.with_codec puts them there, layer 7 of a run's settings)."""

    def __init__(self, d_model, vocab_size, digit_ids, point_id, n_places=48, max_offset=24, embed=True, n_head=0, reach=0):
        super().__init__()
        self.n_places, self.max_offset, self.reach = n_places, max_offset, reach
        kind = torch.zeros(vocab_size, dtype=torch.long)  # 0: other, 1: digit, 2: decimal point
        kind[torch.tensor(digit_ids, dtype=torch.long)] = 1
        if 0 <= point_id < vocab_size:
            kind[point_id] = 2
        self.register_buffer("kind", kind, persistent=False)
        self.emb = nn.Embedding(n_places + 1, d_model) if embed else None
        if embed:
            nn.init.normal_(self.emb.weight, std=0.02)
        self.rel = nn.Parameter(torch.zeros(n_head, 2 * reach + 1)) if reach else None  # per head, per difference

    @staticmethod
    def _ranks(kind, from_right: bool):
        """Each digit's rank among the digits of its number, counted from the number's left or
        right end (B, T); 0 for other tokens. A number is a run of digits and decimal points."""
        segment = (kind == 0).long().cumsum(1)  # a new segment after every token outside numbers
        same = segment[:, :, None] == segment[:, None, :]  # (B, i, j): i and j lie in one number
        T = kind.shape[1]
        order = torch.ones(T, T, dtype=torch.bool, device=kind.device)
        order = order.triu() if from_right else order.tril()  # j at or after i / at or before i
        digit = kind == 1
        return (same & order & digit[:, None, :]).sum(-1) * digit

    def places(self, tokens, side="stream"):
        """Places (B, T) of whole sequences: side "prompt" counts from the right, "answer" from
        the left, "stream" (<bos> input <sep> answer) from the right up to the first <sep>, then
        from the left."""
        kind = self.kind[tokens]
        if side == "answer":
            return self._ranks(kind, from_right=False)
        right = self._ranks(kind, from_right=True)
        if side == "prompt":
            return right
        in_prompt = (tokens == SEP).long().cumsum(1) - (tokens == SEP).long() == 0
        return torch.where(in_prompt, right, self._ranks(kind, from_right=False))

    def attn_bias(self, q_places, k_places):
        """Attention bias (B, H, Tq, Tk) from places (B, Tq) of the queries and (B, Tk) of the keys:
        each head's learned entry for the key's place minus the query's, clamped to -reach..reach,
        on digit keys; 0 on other keys."""
        diff = (k_places[:, None, :] - q_places[:, :, None]).clamp(-self.reach, self.reach) + self.reach
        return self.rel[:, diff].transpose(0, 1) * (k_places > 0)[:, None, None, :]

    def embed(self, places):
        if self.training:  # a random offset per example, on its digits only
            offset = torch.randint(0, self.max_offset + 1, (places.shape[0], 1), device=places.device)
            places = torch.where(places > 0, places + offset, 0)
        return self.emb(places.clamp(max=self.n_places))

    def forward(self, tokens, side="stream"):
        return self.embed(self.places(tokens, side))

    def answer(self, tokens, count=None):
        """Embeddings of answer tokens (B, T) counted from the left, continuing count (B,) (the
        digits of the number in progress); returns (embeddings, count after them)."""
        places, count = self.answer_places(tokens, count)
        return self.embed(places), count

    def answer_places(self, tokens, count=None):
        """answer's places (B, T) rather than their embeddings, and the count after them."""
        kind = self.kind[tokens]
        count = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device) if count is None else count
        places = []
        for t in range(tokens.shape[1]):
            count = torch.where(kind[:, t] == 1, count + 1, torch.where(kind[:, t] == 2, count, 0))
            places.append(count * (kind[:, t] == 1))
        return torch.stack(places, 1), count
