"""Low-rank adapters (LoRA; Hu et al., 2021) on a model's weight matrices, with torch's own
parametrizations (torch.nn.utils.parametrize): the weight W stays frozen and the model computes
with W + (alpha / r) B A, where A (r x in) and B (out x r) are the only trained tensors. B starts at
zero, so training starts exactly from the parent model.

Why not peft: it needs transformers and accelerate, and it adapts nn.Linear, nn.Embedding and
convolutions but not the fused weights of nn.GRU / nn.LSTM. A parametrization works on any weight
tensor, so the recurrent cells' weight_ih_l* and weight_hh_l* (all gates stacked in one matrix)
get one adapter each, like any linear map.

Targets are what an architecture's LORA_TARGETS names (archs/): `attn` (attention projections),
`mlp`, `rnn` (recurrent weights), `head`, `emb`, or `all` of them, each a set of parameter-name
prefixes. The default adapts what transforms the hidden state (attention, MLP and recurrent
weights), not the embeddings, which the attention models tie to their output head. At save,
merge() folds each B A into its W, so the saved run is plain weights that every tool loads
unchanged; the adapters are kept beside them (adapters.safetensors).
"""
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

import archs
from errors import SettingsError

TARGETS = tuple(dict.fromkeys(t for mod in archs.ARCHS.values() for t in mod.LORA_TARGETS))  # every architecture's


class LowRank(nn.Module):
    """W -> W + (alpha / r) B A."""

    def __init__(self, weight: torch.Tensor, r: int, alpha: float):
        super().__init__()
        out, inp = weight.shape
        self.scale = alpha / r
        self.A = nn.Parameter(torch.randn(r, inp, device=weight.device) / inp ** 0.5)
        self.B = nn.Parameter(torch.zeros(out, r, device=weight.device))

    def forward(self, weight):
        return weight + self.scale * (self.B @ self.A)


def parse_targets(text: str) -> tuple[str, ...]:
    """`attn,mlp` -> ("attn", "mlp"); `all` -> every target; SettingsError for a name no architecture has."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    names = TARGETS if names == ("all",) else names
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise SettingsError(f"unknown LoRA target {bad[0] if bad else text!r}; choose from {', '.join(TARGETS)} or all")
    return names


def add(model: nn.Module, arch: str, r: int, alpha: float, targets: str) -> list[str]:
    """Freeze every weight of model (of architecture arch) and put an adapter on each matrix its
    LORA_TARGETS name for targets (those it does not name: none); returns the adapted parameter
    names (SettingsError if none)."""
    own = archs.ARCHS[arch].LORA_TARGETS
    targets = parse_targets(targets)
    prefixes = tuple(p for t in targets for p in own.get(t, ()))
    chosen = []
    for name, p in list(model.named_parameters()):
        module_name, _, attr = name.rpartition(".")
        if p.dim() == 2 and any(name.startswith(x) or f".{x}" in f".{name}" for x in prefixes):
            chosen.append((module_name, attr, p))
    if not chosen:
        raise SettingsError(f"no weight matrix of {arch} is a LoRA target {', '.join(targets)} "
                            f"(it has: {', '.join(own)})")
    for p in model.parameters():
        p.requires_grad_(False)
    for module_name, attr, p in chosen:
        module = model.get_submodule(module_name)
        parametrize.register_parametrization(module, attr, LowRank(p.detach(), r, alpha))
        if isinstance(module, nn.RNNBase):  # its forward reads _flat_weights, kept in step by setattr only
            module._init_flat_weights()
    return [f"{m}.{a}" if m else a for m, a, _ in chosen]


def adapters(model: nn.Module) -> dict:
    """The adapter tensors by name (`<weight>.A`, `<weight>.B`), to keep beside the merged weights."""
    out = {}
    for name, module in model.named_modules():
        for attr, plist in getattr(module, "parametrizations", {}).items():
            for lr in plist:
                if isinstance(lr, LowRank):
                    base = f"{name}.{attr}" if name else attr
                    out[f"{base}.A"], out[f"{base}.B"] = lr.A.detach().cpu(), lr.B.detach().cpu()
    return out


def merge(model: nn.Module):
    """Fold every adapter into its weight (W + (alpha / r) B A) and make all weights plain and
    trainable again: the model is then an ordinary one of its architecture."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for attr in list(module.parametrizations):
                parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
            if isinstance(module, nn.RNNBase):
                module._init_flat_weights()
    for p in model.parameters():
        p.requires_grad_(True)
