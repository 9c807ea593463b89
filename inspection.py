"""What a trained model does with one problem: its answer, the probability of each token it wrote,
and what its architecture shows of how it got there (the `explain` hook of archs/<arch>.py:
attention weights of every layer and head, with the position bias; or the recurrent state, and
a memory's actions, token by token). explain.py prints and draws it; serve.py's page draws it too.

The weights are computed on a path of their own (archs.common.recording): training, decoding and
exported graphs keep the fused attention kernel.
"""
import io

import torch

import archs
import infer
import layouts
from codec import EOS
from errors import BadInput, UserError


def inspect(run, text: str, device="cpu") -> dict:
    """The run's answer to text as infer.ask gives it (problem, answer, output, probability,
    warnings, extras), with `tokens` (what the model read and wrote, as symbols),
    `token_probabilities` (of each answer token, <eos> included) and `panels` (the architecture's
    explain(): name, kind, values (heads, rows, cols) as a tensor, rows and cols as symbols)."""
    hook = getattr(archs.ARCHS[archs.resolve(run.config["arch"])], "explain", None)
    if hook is None or not isinstance(run.model, torch.nn.Module):
        raise UserError(f"explain is not available for {run.config['arch']}" + ("" if hook is None else " with an exported runtime"))
    result = infer.ask(run, [text], device)[0]
    if "error" in result:
        raise BadInput(result["error"])
    prompt, prompt_len = (t.to(device) for t in run.codec.prompts([result["problem"]]))
    with torch.no_grad():
        tokens, probs = layouts.generate(run.model, prompt, prompt_len, infer.max_new_tokens(run.task))
        ids = tokens[0].tolist()
        n = ids.index(EOS) + 1 if EOS in ids else len(ids)
        answer = tokens[:, :n]
        panels = hook(run.model, prompt, answer)
    symbol = lambda t: run.codec.tokens[t] if isinstance(t, int) else t  # noqa: E731
    return {**result, "tokens": [symbol(t) for t in prompt[0].tolist() + ids[:n]],
            "token_probabilities": probs[0, :n].tolist(),
            "panels": [{**p, "rows": [symbol(t) for t in p["rows"]], "cols": [symbol(t) for t in p["cols"]]} for p in panels]}


def as_json(result: dict, digits: int = 4) -> dict:
    """inspect()'s result with the panels' values as nested lists (rounded; -inf as null)."""
    def values(t):
        return [[[None if v == float("-inf") else round(v, digits) for v in row] for row in head] for head in t.tolist()]
    return {**result, "panels": [{**p, "values": values(p["values"])} for p in result["panels"]]}


def drawable(labels: list[str]) -> list[str]:
    """Labels as the plot's font can draw them: a symbol it has no glyph for (the bracket task's
    【】 in DejaVu Sans) is written as its code point, U+3010."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font
    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    return ["".join(c if font.get_char_index(ord(c)) else f"U+{ord(c):04X}" for c in str(label)) for label in labels]


def draw(result: dict) -> bytes:
    """One PNG: a row per panel, a picture per head (weights in 0..1; a state coloured by sign;
    hidden keys of a bias left blank), then the probability of each answer token."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = result["panels"]
    heads = max([p["values"].shape[0] for p in panels] + [1])
    fig, axes = plt.subplots(len(panels) + 1, heads, figsize=(3.2 * heads + 1, 3.0 * (len(panels) + 1)), squeeze=False)
    for r, p in enumerate(panels):
        values = p["values"].masked_fill(torch.isinf(p["values"]), float("nan"))
        for h in range(heads):
            ax = axes[r][h]
            if h >= values.shape[0]:
                ax.axis("off")
                continue
            kind = p["kind"]
            scale = {"attention": dict(cmap="viridis", vmin=0, vmax=1), "actions": dict(cmap="viridis", vmin=0, vmax=1),
                     "state": dict(cmap="RdBu_r", vmin=-1, vmax=1)}.get(kind, dict(cmap="magma"))
            ax.imshow(values[h].numpy(), aspect="auto", interpolation="nearest", **scale)
            ax.set_title(p["name"] if values.shape[0] == 1 else f"{p['name']}, head {h + 1}", fontsize=8)
            for axis, labels in ((ax.set_yticks, p["rows"]), (ax.set_xticks, p["cols"])):
                if len(labels) <= 48:
                    axis(range(len(labels)), drawable(labels), fontsize=6)
                else:
                    axis([])
            ax.tick_params(axis="x", rotation=90)
    ax = axes[-1][0]
    answer = result["tokens"][-len(result["token_probabilities"]):]
    ax.bar(range(len(answer)), result["token_probabilities"])
    ax.set_xticks(range(len(answer)), drawable(answer), fontsize=7)
    ax.set_ylim(0, 1)
    problem, answer = drawable([result["problem"], result["answer"] or "(nothing)"])
    ax.set_title(f"{problem} -> {answer}: each token's probability", fontsize=8)
    for ax in axes[-1][1:]:
        ax.axis("off")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, dpi=90, format="png")
    plt.close(fig)
    return out.getvalue()
