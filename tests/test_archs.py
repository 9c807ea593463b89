"""The architecture contract: every registered architecture (archs.ARCHS) passes these (shapes,
padding invariance, causality, save/load, overfitting a tiny batch; export parity is in
test_export.py), so a new architecture is tested by registering it. SMALL_MODELS makes the known
ones small; a new one runs with its Config's defaults."""
from dataclasses import fields

import pytest
import torch

import archs
import layouts
from codec import BOS, PAD, Batch
from errors import SettingsError, UnknownArch
from runs import load_run, save_run
from settings import TRAIN_KEYS
from tasks import TASKS, Example, codec_of, make_task

OPTIONS = {"max_len": 12, "max_depth": 5}
TASK = make_task("bracket", OPTIONS)
CODEC = codec_of(TASK)
SMALL_MODELS = {"gru": {"d_model": 64}, "lstm": {"d_model": 64}, "tra": {"d_model": 32, "n_layer": 1},
                "ber": {"d_model": 32, "n_layer": 2, "n_slots": 6}, "gpt": {"d_model": 32, "n_layer": 2},
                "ber-refine": {"d_model": 32, "n_layer": 2, "n_slots": 6, "refine": True},
                "gpt-nope": {"d_model": 32, "n_layer": 2, "pos": "none"},  # gpt's bracket default
                "tra-fire": {"d_model": 32, "n_layer": 1, "pos": "fire"},
                "ber-fire": {"d_model": 32, "n_layer": 2, "n_slots": 6, "pos": "fire"},
                "gpt-fire": {"d_model": 32, "n_layer": 2, "pos": "fire"}, "stack": {"d_model": 64}, "tape": {"d_model": 64}}
FIRE = ["tra-fire", "ber-fire", "gpt-fire"]  # learned positions: their modules must save, load, mask and decode like the rest


def build(arch, seed=0, **overrides):
    torch.manual_seed(seed)
    return archs.build(arch.split("-")[0], {**SMALL_MODELS.get(arch, {}), "vocab_size": len(CODEC), **overrides})


CAUSAL = {a for a in archs.ARCHS if build(a)[0].layout != "slots"}  # the slots read the whole input at once


def run_config(arch, cfg):
    return {"arch": arch.split("-")[0], "model": cfg, "codec": CODEC.to_json(),
            "data": {"task": "bracket", "options": OPTIONS}, "train": {}}


def generate(model, b: Batch, max_new):
    return layouts.generate(model, b.prompt, b.prompt_len, max_new)[0]


def texts(model, b: Batch, max_new=8):
    return [CODEC.decode(row) for row in generate(model, b, max_new)]


def examples(n, seed=0, min_answer=0):
    exs = TASK.sample(torch.Generator().manual_seed(seed), 20 * n)
    return [e for e in exs if len(e.target) >= min_answer][:n]


def widen(b: Batch, extra: int) -> Batch:
    pad = lambda t: torch.cat((t, torch.full((t.shape[0], extra), PAD)), 1)  # noqa: E731
    return Batch(pad(b.prompt), b.prompt_len, pad(b.answer), b.answer_len)


def test_registry_names():
    """The registry finds every module of archs/ that defines a Model, by file name and aliases."""
    assert {"gru", "lstm", "tra", "ber", "gpt"} <= set(archs.ARCHS) and "rnn" not in archs.ARCHS and "common" not in archs.ARCHS
    assert archs.resolve("transformer") == "tra" and archs.resolve("BERT") == "ber"
    with pytest.raises(UnknownArch, match=f"unknown architecture 'rnn'; choose one of: {', '.join(archs.ARCHS)}"):
        archs.resolve("rnn")
    with pytest.raises(SettingsError, match="no setting"):
        archs.config("gru", {"n_head": 2})
    assert {archs.build(a, {"vocab_size": len(CODEC)})[0].layout for a in archs.ARCHS} == set(layouts.LAYOUTS)


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_a_config_checks_its_values(arch):
    """Each Config checks what it declares (SettingsError, one line): text from --set takes the
    field's type, and a value the model cannot take is refused before anything is built."""
    fields_of = {f.name: f.type for f in fields(archs.ARCHS[arch].Config)}
    assert archs.config(arch, {"d_model": "32", "dropout": "0.1"}).d_model == 32
    for bad in ({"d_model": "abc"}, {"dropout": "1.5"}, {"d_model": 0}, {"n_layer": -1}):
        with pytest.raises(SettingsError):
            archs.config(arch, bad)
    if "n_head" in fields_of:
        with pytest.raises(SettingsError, match="n_head must divide d_model"):
            archs.config(arch, {"n_head": 3, "d_model": 32})
        with pytest.raises(SettingsError, match="pos must be one of"):
            archs.config(arch, {"pos": "foo"})


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_provides_the_arch_interface(arch):
    """What archs.Arch declares: Config, Model with a layout, TRAIN_DEFAULTS, GROWN_BY_TASK, and
    search_space, task_defaults and task_train_defaults giving settings the Config knows."""
    import optuna
    mod = archs.ARCHS[arch]
    for name in archs.Arch.__annotations__:
        assert hasattr(mod, name), name
    assert {"lr", "batch_size"} <= set(mod.TRAIN_DEFAULTS) <= set(TRAIN_KEYS)
    known = {f.name for f in fields(mod.Config)}
    for task in (make_task(t) for t in TASKS):
        assert set(mod.task_defaults(task)) <= known and set(mod.task_train_defaults(task)) <= set(TRAIN_KEYS)
        assert set(mod.GROWN_BY_TASK) <= set(mod.task_defaults(task))
    space = mod.search_space(optuna.create_study().ask())
    assert set(space["model"]) <= known and set(space["train"]) <= set(TRAIN_KEYS)
    assert layouts.LAYOUTS[build(arch)[0].layout]
    model = build(arch)[0]
    names = [n for n, p in model.named_parameters() if p.dim() == 2]
    for target, prefixes in mod.LORA_TARGETS.items():  # each LoRA target names weight matrices the model has
        assert any(n.startswith(x) or f".{x}" in f".{n}" for n in names for x in prefixes), (arch, target)
    assert mod.EXPORT is None or set(mod.EXPORT) == {"state_grows", "prompts_of_one_length"}  # None: not exported


@pytest.mark.parametrize("arch", [*archs.ARCHS, "gpt-nope", *FIRE])
def test_shapes_and_padding(arch):
    model, _ = build(arch)
    b = CODEC.batch(examples(6))
    loss = layouts.loss(model, b)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    out, probs = layouts.generate(model, b.prompt, b.prompt_len, 7)
    assert out.shape[0] == 6 and out.shape[1] <= 7 and out.dtype == torch.long and probs.shape == out.shape
    assert int(out.max()) < len(CODEC) and ((0 < probs) & (probs <= 1)).all()
    with torch.no_grad():  # extra padding columns change nothing
        per_token, wide = layouts.loss(model, b, per_token=True), layouts.loss(model, widen(b, 5), per_token=True)
        assert torch.allclose(per_token, wide[:, : per_token.shape[1]], atol=1e-5) and not wide[:, per_token.shape[1]:].any()
        assert torch.equal(generate(model, b, 7), generate(model, widen(b, 5), 7))
    assert archs.n_params(model) > 0


@pytest.mark.parametrize("arch", [*archs.ARCHS, *FIRE])
def test_answer_does_not_leak_backwards(arch):
    """A causal model's prediction of answer token 0 cannot see answer token 1 or later; the
    BERT-style model never sees the answer at all (its slots are <mask>)."""
    model, _ = build(arch)
    model.eval()
    b = CODEC.batch(examples(8, min_answer=3))
    changed = b.answer.clone()
    changed[:, 1] = CODEC.stoi["("]  # a token that never appears in an answer
    with torch.no_grad():
        before = layouts.loss(model, b, per_token=True)
        after = layouts.loss(model, Batch(b.prompt, b.prompt_len, changed, b.answer_len), per_token=True)
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-6)
    if arch.split("-")[0] in CAUSAL:
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
            layouts.loss(model, CODEC.batch([Example(text, "))", {})]))
    assert (not torch.allclose(outs[0], outs[1])) == sees_later


@pytest.mark.parametrize("arch", [*archs.ARCHS, "ber-refine", "gpt-nope", *FIRE])
def test_save_load_round_trip(arch, tmp_path):
    model, cfg = build(arch)
    model.eval()
    b = CODEC.batch(examples(8))
    save_run(tmp_path / "run", model, None, run_config(arch, cfg), {"test_em": 0.0}, "step\n")
    run = load_run(tmp_path / "run")
    assert run.codec == CODEC and run.task.cfg == TASK.cfg and not run.model.training
    with torch.no_grad():
        assert torch.equal(layouts.loss(model, b, per_token=True), layouts.loss(run.model, b, per_token=True))
        assert torch.equal(generate(model, b, 7), generate(run.model, b, 7))


@pytest.mark.parametrize("arch", [*archs.ARCHS, "ber-refine", "gpt-nope", *FIRE])
def test_overfits_a_tiny_batch(arch):
    model, _ = build(arch)
    exs = examples(16, seed=5)
    b = CODEC.batch(exs)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(1000):
        loss = layouts.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49:
            model.eval()
            done = texts(model, b) == [e.target for e in exs]
            model.train()
            if done:
                break
    model.eval()
    assert texts(model, b) == [e.target for e in exs]
    # batched and one-by-one generation agree (padding, packing, masks)
    assert [texts(model, CODEC.batch([e]))[0] for e in exs] == [e.target for e in exs]


def test_save_run_never_replaces_a_run(tmp_path):
    """Two runs that picked the same folder name (two workers in the same second) both land."""
    model, cfg = build("gpt")
    config = run_config("gpt", cfg)
    first = save_run(tmp_path / "run", model, None, config, {"test_em": 0.1}, "step\n")
    second = save_run(tmp_path / "run", model, None, config, {"test_em": 0.2}, "step\n")
    assert str(first) == str(tmp_path / "run") and str(second) == str(tmp_path / "run") + "_2"
    assert load_run(first).metrics["test_em"] == 0.1 and load_run(second).metrics["test_em"] == 0.2


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
    import infer
    from runs import load_weights
    model, cfg = build(arch)
    flat = flatten_like_cudnn(model.rnn)
    exs = examples(64, seed=3)
    save_run(tmp_path / "run", model, torch.optim.AdamW(model.parameters()), run_config(arch, cfg), {"test_em": 0.0}, "step\n")
    loaded = load_run(tmp_path / "run").model
    model.eval()
    b = CODEC.batch(exs)
    with torch.no_grad():
        assert torch.equal(layouts.loss(model, b, per_token=True), layouts.loss(loaded, b, per_token=True))
    assert infer.predict(model, CODEC, exs, TASK) == infer.predict(loaded, CODEC, exs, TASK)
    # and back into a model whose weights are views into one buffer: the buffer is filled in place
    other, _ = build(arch, seed=1)
    other_flat = flatten_like_cudnn(other.rnn)
    load_weights(other, tmp_path / "run" / "model.safetensors")
    assert torch.equal(other_flat, flat) and other.rnn.weight_ih_l0.data_ptr() == other_flat.data_ptr()
    assert infer.predict(other.eval(), CODEC, exs, TASK) == infer.predict(model, CODEC, exs, TASK)


def test_weights_of_another_shape_name_the_tensor(tmp_path):
    from errors import RunError
    from runs import load_weights
    model, cfg = build("gpt")
    save_run(tmp_path / "run", model, None, run_config("gpt", cfg), {}, "")
    bigger, _ = build("gpt", d_model=64)
    with pytest.raises(RunError, match=r"emb.weight has shape \(\d+, 32\) in the file and \(\d+, 64\) in the model"):
        load_weights(bigger, tmp_path / "run" / "model.safetensors")


ARITH = make_task("arith", {"ops": "+-*", "digits": 2, "negatives": True, "decimals": True, "format": "reversed"})
ARITH_CODEC = codec_of(ARITH)


def build_with_places(arch, seed=0):
    torch.manual_seed(seed)
    digit_ids, point_id = ARITH_CODEC.number_ids()
    settings = {**SMALL_MODELS[arch], "vocab_size": len(ARITH_CODEC), "places": True, "digit_ids": digit_ids,
                "point_id": point_id, **({"n_slots": ARITH.max_target_len() + 1} if arch == "ber" else {})}
    return archs.build(arch, settings)


@pytest.mark.parametrize("arch", sorted(CAUSAL))
def test_step_by_step_equals_the_whole_sequence(arch):
    """Decoding token by token from a prompt (the state carried) gives the logits of the whole
    teacher-forced sequence, for each example alone and for a right-padded batch."""
    model, _ = build(arch)
    model.eval()
    with torch.no_grad():
        for e in examples(3, min_answer=2):
            steps, whole, _ = step_by_step_and_whole(model, CODEC.batch([e]))
            assert torch.allclose(steps, whole, atol=1e-5), arch


def step_by_step_and_whole(model, one):
    """Logits of one example's answer positions decoded token by token, those of the whole
    teacher-forced sequence, and the decoding state at the end."""
    if model.layout == "decoder":
        x, _ = layouts.decoder_sequences(one)
        whole = model(x)[0, one.prompt.shape[1] - 1:]
        logits, state = model.step(one.prompt)
    else:
        tgt = torch.cat((torch.full_like(one.answer[:, :1], BOS), one.answer[:, :-1]), 1)
        whole = model(one.prompt, tgt)[0]
        logits, state = model.step(tgt[:, :1], model.encode(one.prompt))
    steps = [logits[0, -1]]
    for tok in one.answer[0, : one.answer.shape[1] - 1]:
        logits, state = model.step(tok.view(1, 1), state)
        steps.append(logits[0, -1])
    return torch.stack(steps), whole[: len(steps)], state


@pytest.mark.parametrize("arch", [a for a in CAUSAL if "places" in {f.name for f in fields(archs.ARCHS[a].Config)}])
def test_digit_places_step_by_step_equals_the_whole_sequence(arch):
    """With place embeddings, decoding token by token (the place counter in the state) gives the
    logits that the whole teacher-forced sequence gives; and the model still learns and decodes
    batched and alone alike."""
    model, _ = build_with_places(arch)
    exs = [e for e in ARITH.sample(torch.Generator().manual_seed(2), 200) if "." in e.target][:12]
    b = ARITH_CODEC.batch(exs)
    model.eval()
    if model.layout != "slots":
        with torch.no_grad():
            for i in range(3):
                steps, whole, _ = step_by_step_and_whole(model, ARITH_CODEC.batch([exs[i]]))
                assert torch.allclose(steps, whole, atol=1e-5)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(1500):
        loss = layouts.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 99:
            model.eval()
            done = [ARITH_CODEC.decode(r) for r in layouts.generate(model, b.prompt, b.prompt_len, 12)[0]] == [e.target for e in exs]
            model.train()
            if done:
                break
    model.eval()
    out = [ARITH_CODEC.decode(r) for r in layouts.generate(model, b.prompt, b.prompt_len, 12)[0]]
    assert out == [e.target for e in exs]
    alone = [ARITH_CODEC.decode(layouts.generate(model, *ARITH_CODEC.prompts([e.input]), 12)[0][0]) for e in exs]
    assert alone == out


def test_place_bias_follows_place_differences():
    """The place bias (gpt's, tra's cross-attention): each head adds its entry for a digit key's
    place minus the query's place, clamped to the reach (a difference beyond it gets the reach's
    entry, as in longer numbers than training had), nothing on other keys."""
    from archs.common import DigitPlaces
    digit_ids, point_id = ARITH_CODEC.number_ids()
    dp = DigitPlaces(8, len(ARITH_CODEC), digit_ids, point_id, embed=False, n_head=2, reach=2)
    assert dp.emb is None
    with torch.no_grad():
        dp.rel.copy_(torch.tensor([[1.0, 2, 3, 4, 5], [10, 20, 30, 40, 50]]))  # entries for -2 -1 0 +1 +2
    q, k = torch.tensor([[0, 1, 3]]), torch.tensor([[2, 0, 1, 3, 7]])  # key place 0: not a digit
    head0 = torch.tensor([[5.0, 0, 4, 5, 5],   # query at place 0: +2, -, +1, +3 -> +2, +7 -> +2
                          [4, 0, 3, 5, 5],     # place 1: +1, -, 0, +2, +6 -> +2
                          [2, 0, 1, 3, 5]])    # place 3: -1, -, -2, 0, +4 -> +2
    bias = dp.attn_bias(q, k)
    assert bias.shape == (1, 2, 3, 5) and torch.equal(bias[0, 0], head0) and torch.equal(bias[0, 1], 10 * head0)


def test_ber_slot_k_reads_digits_by_place_from_place_k():
    """ber's place bias: answer slot k writes the reversed answer's place-(k+1) digit, so its query
    stands at place k (as gpt's query on the place-k digit does); prompt digits are keys by their
    place, and nothing else (<bos>, the operator, <sep>, the slots) gets a bias."""
    digit_ids, point_id = ARITH_CODEC.number_ids()
    model, _ = archs.build("ber", {"d_model": 16, "n_head": 2, "n_layer": 1, "n_slots": 5, "place_bias": 2, "pos": "none",
                                   "vocab_size": len(ARITH_CODEC), "digit_ids": digit_ids, "point_id": point_id})
    with torch.no_grad():
        model.places.rel.copy_(torch.tensor([[1.0, 2, 3, 4, 5], [10, 20, 30, 40, 50]]))  # entries for -2 -1 0 +1 +2
    prompt, prompt_len = ARITH_CODEC.prompts(["12+345"])  # <bos> 1 2 + 3 4 5 <sep>: places 0 2 1 0 3 2 1 0
    x, slot_pos = layouts.slot_inputs(prompt, prompt_len, 5)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[1]))
    model(x, slot_pos)
    with torch.no_grad():
        model.places.rel.zero_()
    model(x, slot_pos)  # pos "none": ALiBi's heads would hide one side each (-inf)
    place = (seen[0] - seen[1])[0, 0, slot_pos[0]]  # head 0, the slots' rows
    none = [0.0] * 5  # the slots as keys
    assert torch.equal(place, torch.tensor([[0.0, 5, 4, 0, 5, 5, 4, 0, *none],   # slot 0, place 0: +2 +1 | +3->+2 +2 +1
                                            [0, 4, 3, 0, 5, 4, 3, 0, *none],     # slot 1: +1 0 | +2 +1 0
                                            [0, 3, 2, 0, 4, 3, 2, 0, *none],     # slot 2: 0 -1 | +1 0 -1
                                            [0, 2, 1, 0, 3, 2, 1, 0, *none],     # slot 3: -1 -2 | 0 -1 -2
                                            [0, 1, 1, 0, 2, 1, 1, 0, *none]]))   # slot 4: -2 -3->-2 | -1 -2 -3->-2
    assert torch.equal(seen[0][0, 1] - seen[1][0, 1], 10 * (seen[0][0, 0] - seen[1][0, 0]))


@pytest.mark.parametrize("arch", ["gpt", "tra"])
def test_place_bias_decodes_step_by_step_as_the_whole_sequence(arch):
    """Decoding token by token, with the places of the keys (gpt) or of the memory (tra) in the
    state, gives the logits of the whole teacher-forced sequence."""
    torch.manual_seed(0)
    digit_ids, point_id = ARITH_CODEC.number_ids()
    model, _ = archs.build(arch, {**SMALL_MODELS[arch], "vocab_size": len(ARITH_CODEC), "place_bias": 2,
                                  "digit_ids": digit_ids, "point_id": point_id})
    with torch.no_grad():
        model.places.rel.normal_()
    model.eval()
    with torch.no_grad():
        for e in ARITH.sample(torch.Generator().manual_seed(3), 4):
            steps, whole, state = step_by_step_and_whole(model, ARITH_CODEC.batch([e]))
            assert state["place" if arch == "gpt" else "mem_place"].shape == state["pos" if arch == "gpt" else "mem_valid"].shape
            assert torch.allclose(steps, whole, atol=1e-5)


def test_train_defaults_apply_below_flags():
    """Every architecture trains arithmetic with * or / under weight decay unless --weight-decay
    says otherwise; + and - alone keep none, and so does bracket closing but for gru's own default."""
    import dataset as D
    from settings import Request, resolve
    four = D.DataSpec("arith", {"ops": "+-*/", "format": "scratch"})
    for arch, spec, given, expected in (("gpt", four, None, 0.1), ("gpt", four, 0.0, 0.0), ("gpt", four, 0.3, 0.3),
                                        ("gpt", D.DataSpec("bracket", None), None, 0.0), ("gru", four, None, 0.1),
                                        ("lstm", four, 0.0, 0.0), ("lstm", D.DataSpec("arith", {"ops": "+-"}), None, 0.0),
                                        ("tra", four, None, 0.1), ("ber", four, None, 0.1),
                                        ("ber", D.DataSpec("bracket", None), None, 0.0),
                                        ("gru", D.DataSpec("bracket", None), None, 0.1), ("gru", D.DataSpec("bracket", None), 0.0, 0.0),
                                        ("lstm", D.DataSpec("bracket", None), None, 0.0)):
        settings = resolve(Request(arch=arch, budget="1s", data=spec, weight_decay=given))
        assert settings.train.weight_decay == expected, (arch, spec.task, given)


def test_task_defaults_apply_below_set():
    """gpt, tra and ber take a digit place bias for reversed + and -, gpt no position encoding for bracket closing,
    tra two layers of width 64 for * and /, gru width 96 for bracket closing, gru and lstm two layers for * and /,
    unless --set says otherwise; other
    tasks and architectures keep Config's defaults."""
    import archs
    import dataset as D
    from settings import Request, resolve
    reversed_arith = D.DataSpec("arith", {"ops": "+-", "format": "reversed"})
    for arch, spec, model, places, bias in (("gpt", reversed_arith, {}, False, 2), ("gpt", reversed_arith, {"place_bias": 0}, False, 0),
                                            ("gpt", reversed_arith, {"places": True}, True, 2),
                                            ("gpt", D.DataSpec("bracket", None), {"pos": "alibi"}, False, 0),
                                            ("gpt", D.DataSpec("arith", {"ops": "+-"}), {}, False, 0),
                                            ("gpt", D.DataSpec("arith", {"ops": "+-*/", "format": "reversed"}), {}, False, 0),
                                            ("gru", reversed_arith, {}, False, 0), ("gpt", D.DataSpec("bracket", None), {}, False, 0),
                                            ("tra", reversed_arith, {}, False, 2), ("tra", D.DataSpec("bracket", None), {}, False, 0),
                                            ("ber", reversed_arith, {}, False, 2), ("ber", reversed_arith, {"place_bias": 0}, False, 0),
                                            ("ber", D.DataSpec("arith", {"ops": "+-*/", "format": "reversed"}), {}, False, 0),
                                            ("ber", D.DataSpec("bracket", None), {}, False, 0)):
        s = resolve(Request(arch=arch, budget="1s", data=spec, model=dict(model)))
        m, _ = archs.build(arch, s.model)
        assert s.model["places"] is places and s.model.get("place_bias", 0) == bias, (arch, spec, model)
        assert (m.places is not None) is (places or bias > 0), (arch, spec, model)
        if arch == "gpt":  # no position bias on bracket closing (NoPE), ALiBi elsewhere
            assert s.model["pos"] == model.get("pos", "none" if spec.task == "bracket" else "alibi")
        if places or bias:
            assert s.model["digit_ids"] == s.codec.number_ids()[0]
    four = D.DataSpec("arith", {"ops": "+-*/", "format": "scratch"})
    bracket = D.DataSpec("bracket", None)
    for arch, spec, model, width in (("tra", four, {}, 64), ("tra", four, {"d_model": 96}, 96), ("tra", bracket, {}, 32),
                                     ("tra", D.DataSpec("arith", {"ops": "+-"}), {}, 32), ("gru", bracket, {}, 96),
                                     ("gru", bracket, {"d_model": 128}, 128), ("gru", four, {}, 128), ("lstm", bracket, {}, 128),
                                     ("lstm", four, {}, 128), ("lstm", four, {"n_layer": 1}, 128),
                                     ("lstm", D.DataSpec("arith", {"ops": "+-"}), {}, 128)):
        s = resolve(Request(arch=arch, budget="1s", data=spec, model=dict(model)))
        m, _ = archs.build(arch, s.model)
        assert s.model["d_model"] == width and m.emb.embedding_dim == width, (arch, spec.task, model)
        layers = model.get("n_layer", 2 if spec is four else 1)  # two layers (each side for tra) for * and /, one elsewhere
        if arch == "tra":
            assert s.model["n_layer"] == len(m.encoder) == len(m.decoder) == layers
        else:
            assert s.model["n_layer"] == m.rnn.num_layers == layers, (arch, spec.task, model)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_fire_table_gives_f_at_every_pair(bidirectional):
    """FIRE's bias, gathered from a table of f over every (distance, length) pair below the bound,
    is f evaluated at each query/key pair, at the tightest bound and a loose one, with left padding."""
    torch.manual_seed(0)
    fire = archs.common.Fire(4, bidirectional=bidirectional)
    valid = torch.tensor([[False, False, True, True, True, True], [True] * 6, [False] * 5 + [True]])
    pos = archs.common.positions(valid)
    d = pos[:, :, None] - pos[:, None, :]
    n = (valid.sum(1)[:, None, None] if bidirectional else pos[:, :, None] + 1).expand_as(d)
    want = fire.f(d, n).permute(0, 3, 1, 2)
    for bound in (6, 11):
        assert torch.allclose(fire(pos, pos, valid, bound=bound), want, atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt-fire", "tra-fire"])
def test_fire_decodes_step_by_step_as_the_whole_sequence(arch):
    """With FIRE, decoding token by token (the cross-attention's queries then stand past the
    shapes of one step) gives the logits of the whole teacher-forced sequence."""
    model, _ = build(arch)
    for m in model.modules():
        if isinstance(m, archs.common.Fire):
            torch.nn.init.normal_(m.mlp[-1].weight)  # a bias that matters
    model.eval()
    with torch.no_grad():
        for e in examples(4, seed=5, min_answer=3):
            steps, whole, _ = step_by_step_and_whole(model, CODEC.batch([e]))
            assert torch.allclose(steps, whole, atol=1e-5)
