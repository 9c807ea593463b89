"""The codec (a run's own symbols), runs saved before codecs existed, and how tasks read what people type."""
import json
import os
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_model

import archs
import dataset as D
import infer
import scoring
from codec import SPECIALS, Codec, UnknownSymbols
from errors import BadInput, RunError
from runs import load_run
from tasks import codec_of, make_task

# The global vocabulary every run and data folder used before codecs (config.json "vocab").
LEGACY_VOCAB = ["<pad>", "<bos>", "<sep>", "<eos>", "<mask>", "(", ")", "[", "]", "{", "}", "【", "】",
                *"0123456789", "+", "-", "*", "/", ".", "=", " ", "\\frac", "\\times"]


def test_codec_round_trip_and_unknown_symbols():
    codec = codec_of(make_task("arith", {"format": "latex"}))
    for text in ["12*(-3.5)", "\\frac{7}{2} = 3.5", "12 \\times 3 = 36", ""]:
        assert codec.decode(codec.encode(text)) == text
    assert codec.tokens[:5] == list(SPECIALS) and len(set(codec.tokens)) == len(codec)
    with pytest.raises(UnknownSymbols) as e:
        codec.encode("12a+b")
    assert e.value.bad == ["a", "b"] and "'a', 'b'" in str(e.value) and "allowed: 0 1 2" in str(e.value)
    assert Codec.of({"codec": codec.to_json()}) == codec and Codec.of({"vocab": LEGACY_VOCAB}).tokens == LEGACY_VOCAB


def test_each_task_has_its_own_codec():
    bracket, arith = codec_of(make_task("bracket")), codec_of(make_task("arith"))
    assert bracket.symbols == list("()【】{}[]") and "0" not in bracket.stoi
    assert "\\frac" not in arith.stoi and "\\frac" in codec_of(make_task("arith", {"format": "latex"})).stoi
    assert codec_of(make_task("bracket", {"kinds": "<>"})).symbols == ["<", ">"]


def legacy_run(tmp_path, arch, seed=0):
    """A run folder exactly as the version before codecs wrote it: a 32-token global vocabulary in
    config.json, model.safetensors written by safetensors' save_model (tied weights once)."""
    spec = D.DataSpec("bracket", None, 2000, 100, 200, 100)
    torch.manual_seed(seed)
    settings = {"vocab_size": 32, **({"n_slots": 11} if arch == "ber" else {})}
    model, cfg = archs.build(arch, settings)
    run = tmp_path / f"{arch}_legacy"
    run.mkdir()
    save_model(model, str(run / "model.safetensors"))
    config = {"arch": arch, "model": cfg, "data": asdict(spec), "data_dir": str(tmp_path / "data"), "data_sha256": {},
              "train": {"lr": 3e-3, "batch_size": 64, "warmup": 0.02, "weight_decay": 0.0, "grad_clip": 1.0, "budget": "3s"},
              "vocab": LEGACY_VOCAB, "resumed_from": None}
    (run / "config.json").write_text(json.dumps(config, ensure_ascii=False))
    (run / "metrics.json").write_text(json.dumps({"test_em": 0.0, "steps": 1, "samples": 64, "created": "2026-11-22 10:00:00"}))
    return run, model


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_a_run_saved_before_codecs_loads_and_scores_the_same(tmp_path, arch):
    run_dir, model = legacy_run(tmp_path, arch)
    run = load_run(run_dir)
    assert run.codec.tokens == LEGACY_VOCAB and run.task.name == "bracket"
    exs = make_task("bracket").sample(torch.Generator().manual_seed(0), 40)
    assert infer.predict(run.model, run.codec, exs, run.task) == infer.predict(model.eval(), run.codec, exs, run.task)
    result = scoring.evaluate_run(str(run_dir), "cpu")
    assert result["test"]["n"] == 200 and os.path.exists(result["files"]["summary"])


def test_a_run_saved_before_codecs_resumes(tmp_path):
    from settings import Request
    from training import train
    run_dir, _ = legacy_run(tmp_path, "gru")
    m = train(Request(arch="gru", budget="2s", resume=str(run_dir), models_dir=str(tmp_path / "models"),
                          data_dir=str(tmp_path / "data")), quiet=True)
    resumed = load_run(m["run"])
    assert resumed.codec.tokens == LEGACY_VOCAB and m["steps"] > 0 and m["total_steps"] == m["steps"] + 1


def test_a_run_with_a_broken_codec_is_a_one_line_error(tmp_path):
    run_dir, _ = legacy_run(tmp_path, "gpt")
    config = json.loads((run_dir / "config.json").read_text())
    for codec, message in (({"tokens": ["x"]}, "codec"), ({"tokens": [*SPECIALS, "(", ")"]}, "vocab_size")):
        config.pop("vocab", None)
        config["codec"] = codec
        (run_dir / "config.json").write_text(json.dumps(config))
        with pytest.raises(RunError, match=message):
            load_run(run_dir)


@pytest.mark.parametrize("typed,form", [
    ("12 × 3 =", "12*3"), ("7÷2", "7/2"), ("12 − 3", "12-3"), ("12*-3", "12*(-3)"), ("12*(-3)", "12*(-3)"),
    ("(−4.5) + (−3)", "-4.5+(-3)"), ("03.50+1", "3.5+1"), ("１２＋３", "12+3"), ("12 * 3 = ", "12*3"), ("-0+2", "0+2"),
])
def test_arith_reads_what_people_type(typed, form):
    assert make_task("arith").normalize(typed) == form


def test_arith_checks_and_presents():
    task = make_task("arith", {"ops": "+-", "digits": 2, "format": "reversed"})
    assert task.check("12+3") == []
    warnings = " | ".join(task.check("123*(-4.5)"))
    for part in ("operation *", "123 has 3 digits", "no negative", "no decimal"):
        assert part in warnings, warnings
    for bad in ("12**3", "abc", "1+2+3", "5/0"):
        with pytest.raises(BadInput):
            task.check(bad)
    assert task.present("12+3", "51") == {"answer": "15", "latex": "12 + 3 = 15"}
    assert make_task("arith").present("7/2", "3.5")["latex"] == "\\frac{7}{2} = 3.5"
    scratch = make_task("arith", {"format": "scratch", "decimals": True, "negatives": True})
    assert scratch.present("-4.7*23", "141+049=1.801-") == {"answer": "-108.1", "work": "141 + 940", "latex": "-4.7 \\times 23 = -108.1"}
    assert scratch.present("12+3", "51") == {"answer": "15", "latex": "12 + 3 = 15"}
    assert scratch.present("7/2", "3.5")["answer"] == "3.5" and scratch.answer("7", "/", "2", "3.5") == "3.5"
    assert make_task("arith", {"decimals": True}).check("7/3") == ["the quotient is not exact to two decimals; "
                                                                    "training only had exact quotients"]


def test_bracket_reads_what_people_type():
    task = make_task("bracket")
    assert task.normalize(" ( 【 { ") == "(【{" and task.normalize("（［") == "(["
    assert task.check("(【{") == []
    assert "length 40" in task.check("(" * 5 + "()" * 17 + ")" * 1)[0]
    assert "depth 11" in " ".join(task.check("(" * 11))
    with pytest.raises(BadInput, match="position 2"):
        task.check("(】")
