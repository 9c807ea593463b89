"""Every registered architecture: shapes, padding, causality, save/load, and it can learn."""
import pytest
import torch

import archs
import dataset as D
from runs import load_run, save_run

TASK = D.make_task("bracket", {"max_len": 12, "max_depth": 5})
SMALL_MODELS = {"gru": {"d_model": 64}, "lstm": {"d_model": 64}, "tra": {"d_model": 32, "n_layer": 1},
                "ber": {"d_model": 32, "n_layer": 2, "n_slots": 6}, "gpt": {"d_model": 32, "n_layer": 2},
                "ber-refine": {"d_model": 32, "n_layer": 2, "n_slots": 6, "refine": True}}
CAUSAL = {"gru", "lstm", "gpt", "tra"}


def build(arch, seed=0):
    torch.manual_seed(seed)
    model, cfg = archs.build(arch.split("-")[0], SMALL_MODELS[arch])
    return model, cfg


def examples(n, seed=0, min_answer=0):
    exs = TASK.sample(torch.Generator().manual_seed(seed), 20 * n)
    return [e for e in exs if len(e.target) >= min_answer][:n]


def widen(b: D.Batch, extra: int) -> D.Batch:
    pad = lambda t: torch.cat((t, torch.full((t.shape[0], extra), D.PAD)), 1)  # noqa: E731
    return D.Batch(pad(b.prompt), b.prompt_len, pad(b.answer), b.answer_len)


def test_registry_names():
    assert set(archs.ARCHS) == {"gru", "lstm", "tra", "ber", "gpt"}
    assert archs.resolve("transformer") == "tra" and archs.resolve("BERT") == "ber"
    with pytest.raises(KeyError):
        archs.resolve("rnn")
    with pytest.raises(ValueError, match="no setting"):
        archs.config("gru", {"n_head": 2})


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_shapes_and_padding(arch):
    model, _ = build(arch)
    b = D.to_batch(examples(6))
    loss = model.loss(b)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    out = model.generate(b, 7)
    assert out.shape[0] == 6 and out.shape[1] <= 7 and out.dtype == torch.long
    assert int(out.max()) < D.VOCAB_SIZE
    with torch.no_grad():  # extra padding columns change nothing
        per_token, wide = model.loss(b, per_token=True), model.loss(widen(b, 5), per_token=True)
        assert torch.allclose(per_token, wide[:, : per_token.shape[1]], atol=1e-5) and not wide[:, per_token.shape[1]:].any()
        assert torch.equal(model.generate(b, 7), model.generate(widen(b, 5), 7))
    assert archs.n_params(model) > 0


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_answer_does_not_leak_backwards(arch):
    """A causal model's prediction of answer token 0 cannot see answer token 1 or later; the
    BERT-style model never sees the answer at all (its slots are <mask>)."""
    model, _ = build(arch)
    model.eval()
    b = D.to_batch(examples(8, min_answer=3))
    changed = b.answer.clone()
    changed[:, 1] = D.STOI["("]  # a token that never appears in an answer
    with torch.no_grad():
        before = model.loss(b, per_token=True)
        after = model.loss(D.Batch(b.prompt, b.prompt_len, changed, b.answer_len), per_token=True)
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-6)
    if arch in CAUSAL:
        assert not torch.allclose(before[:, 2:], after[:, 2:]), "later positions do read earlier answer tokens"
    else:
        assert torch.allclose(before[:, 2:], after[:, 2:], atol=1e-6)


@pytest.mark.parametrize("arch,sees_later", [("ber", True), ("gpt", False)])
def test_bidirectional_vs_causal(arch, sees_later):
    """The hidden state at <bos> changes with a later input token in the BERT-style model (it is
    bidirectional, not a causal model in disguise) and never in GPT."""
    model, _ = build(arch)
    model.eval()
    outs = []
    model.blocks[-1].register_forward_hook(lambda m, i, o: outs.append(o[:, 0].clone()))
    with torch.no_grad():
        for text in ("((", "(["):
            model.loss(D.to_batch([D.Example(text, "))", {})]))
    assert (not torch.allclose(outs[0], outs[1])) == sees_later


@pytest.mark.parametrize("arch", [*archs.ARCHS, "ber-refine"])
def test_save_load_round_trip(arch, tmp_path):
    model, cfg = build(arch)
    model.eval()
    b = D.to_batch(examples(8))
    config = {"arch": arch.split("-")[0], "model": cfg, "vocab": D.VOCAB, "data": {}, "train": {}}
    save_run(tmp_path / "run", model, None, config, {"test_em": 0.0}, "step\n")
    loaded, _, _ = load_run(tmp_path / "run")
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model.loss(b, per_token=True), loaded.loss(b, per_token=True))
        assert torch.equal(model.generate(b, 7), loaded.generate(b, 7))


@pytest.mark.parametrize("arch", [*archs.ARCHS, "ber-refine"])
def test_overfits_a_tiny_batch(arch):
    model, _ = build(arch)
    exs = examples(16, seed=5)
    b = D.to_batch(exs)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(1000):
        loss = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49:
            model.eval()
            texts = D.answers_to_text(model.generate(b, 8))
            model.train()
            if texts == [e.target for e in exs]:
                break
    model.eval()
    assert D.answers_to_text(model.generate(b, 8)) == [e.target for e in exs]
    # batched and one-by-one generation agree (left padding, packing, masks)
    alone = [D.answers_to_text(model.generate(D.to_batch([e]), 8))[0] for e in exs]
    assert alone == [e.target for e in exs]


def test_save_run_never_replaces_a_run(tmp_path):
    """Two runs that picked the same folder name (two workers in the same second) both land."""
    model, cfg = build("gpt")
    config = {"arch": "gpt", "model": cfg, "vocab": D.VOCAB, "data": {}, "train": {}}
    first = save_run(tmp_path / "run", model, None, config, {"test_em": 0.1}, "step\n")
    second = save_run(tmp_path / "run", model, None, config, {"test_em": 0.2}, "step\n")
    assert str(first) == str(tmp_path / "run") and str(second) == str(tmp_path / "run") + "_2"
    assert load_run(first)[2]["test_em"] == 0.1 and load_run(second)[2]["test_em"] == 0.2


def flatten_like_cudnn(rnn: torch.nn.Module) -> torch.Tensor:
    """Make every weight of an nn.GRU/nn.LSTM a view into one flat buffer, as cuDNN does on CUDA."""
    params = list(rnn.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    offset = 0
    for p in params:
        p.data = flat[offset: offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_rnn_with_flat_cudnn_weights_saves_loads_and_scores_the_same(arch, tmp_path):
    """Regression: on CUDA a trained gru/lstm died at save ("None is covering the entire storage")."""
    import evaluate
    from runs import load_weights
    model, cfg = build(arch)
    flat = flatten_like_cudnn(model.rnn)
    exs = examples(64, seed=3)
    config = {"arch": arch, "model": cfg, "vocab": D.VOCAB, "data": {}, "train": {}}
    save_run(tmp_path / "run", model, torch.optim.AdamW(model.parameters()), config, {"test_em": 0.0}, "step\n")
    loaded, _, _ = load_run(tmp_path / "run")
    model.eval(), loaded.eval()
    b = D.to_batch(exs)
    with torch.no_grad():
        assert torch.equal(model.loss(b, per_token=True), loaded.loss(b, per_token=True))
    assert evaluate.predict(model, exs, 12) == evaluate.predict(loaded, exs, 12)
    # and back into a model whose weights are views into one buffer: the buffer is filled in place
    other, _ = build(arch, seed=1)
    other_flat = flatten_like_cudnn(other.rnn)
    load_weights(other, tmp_path / "run" / "model.safetensors")
    assert torch.equal(other_flat, flat) and other.rnn.weight_ih_l0.data_ptr() == other_flat.data_ptr()
    assert evaluate.predict(other.eval(), exs, 12) == evaluate.predict(model, exs, 12)


def test_weights_of_another_shape_name_the_tensor(tmp_path):
    from runs import RunError, load_weights
    model, cfg = build("gpt")
    save_run(tmp_path / "run", model, None, {"arch": "gpt", "model": cfg, "vocab": D.VOCAB}, {}, "")
    bigger, _ = archs.build("gpt", {**SMALL_MODELS["gpt"], "d_model": 64})
    with pytest.raises(RunError, match=r"emb.weight has shape \(\d+, 32\) in the file and \(\d+, 64\) in the model"):
        load_weights(bigger, tmp_path / "run" / "model.safetensors")
