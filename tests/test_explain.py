"""explain.py and the architectures' explain hook: for every architecture, attention rows that sum
to 1 over real tokens (0 on the future where it is causal), states over every token read, and the
picture written; a one-line refusal where there is no hook."""
import json
import os

import pytest
import torch

import archs
import inspection
from codec import PAD
from conftest import assert_one_line_error, run_main
from runs import load_run, save_run
from tasks import codec_of, make_task

TASK = make_task("bracket", {"max_len": 12, "max_depth": 5})
CODEC = codec_of(TASK)
PROBLEMS = {"bracket": "(([{", "arith": "12*3", "reverse": "abcd"}  # a problem of each task, four symbols long
SMALL = {"gpt": {"d_model": 32, "n_layer": 2}, "tra": {"d_model": 32, "n_layer": 2}, "ber": {"d_model": 32, "n_slots": 6},
         "gru": {"d_model": 32}, "lstm": {"d_model": 32}, "stack": {"d_model": 32}, "tape": {"d_model": 32}}


def saved(arch, folder, task="bracket"):
    """An untrained run of arch on task saved to folder: explain reads any run."""
    torch.manual_seed(0)
    made = make_task(task, {"max_len": 12, "max_depth": 5} if task == "bracket" else {})
    codec = codec_of(made)
    settings = {**SMALL.get(arch, {}), "vocab_size": len(codec)}
    if arch == "ber":
        settings["n_slots"] = made.max_target_len() + 1
    model, cfg = archs.build(arch, settings)
    config = {"arch": arch, "model": cfg, "codec": codec.to_json(), "data": {"task": task, "options": made.cfg.__dict__},
              "train": {}}
    return save_run(str(folder / f"{arch}_{task}_run"), model, None, config, {"test_em": 0.0}, "step\n")


@pytest.mark.parametrize("task", list(PROBLEMS))
@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_every_architecture_explains_a_problem(arch, task, tmp_path):
    run = load_run(saved(arch, tmp_path, task))
    problem = PROBLEMS[task]
    result = inspection.inspect(run, problem)
    read = ["<bos>", *problem, "<sep>"]
    assert result["tokens"][:6] == read and result["panels"]
    assert len(result["token_probabilities"]) == len(result["tokens"]) - 6
    for p in result["panels"]:
        v = p["values"]
        assert v.dim() == 3 and v.shape[1:] == (len(p["rows"]), len(p["cols"])), p["name"]
        if p["kind"] in ("attention", "actions"):
            real = torch.tensor([c not in ("<pad>",) for c in p["cols"]])
            sums = v[..., real].sum(-1) if p["kind"] == "attention" else v.sum(1)
            assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5), p["name"]
        if p["kind"] == "attention" and p["rows"] == p["cols"] and "encoder" not in p["name"] and arch != "ber":
            future = torch.triu(torch.ones(v.shape[1:], dtype=torch.bool), 1)
            assert not v[:, future].any(), f"{p['name']}: a causal model gives the future no weight"
        if p["kind"] == "state":
            assert p["cols"][:6] == read
    kinds = {p["kind"] for p in result["panels"]}
    assert ("attention" in kinds) == (arch in ("tra", "ber", "gpt")) and ("state" in kinds) == (arch not in ("tra", "ber", "gpt"))
    p = run_main("explain.py", run.path, problem, cwd=tmp_path)
    assert p.returncode == 0 and "written:" in p.stdout, p.stderr
    assert os.path.getsize(os.path.join(run.path, "explain.png")) > 5000


def test_explain_json_and_bad_input(tmp_path):
    path = saved("gpt", tmp_path)
    p = run_main("explain.py", path, "([", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["problem"] == "([" and out["panels"][0]["name"] == "layer 1: self-attention"
    weights = out["panels"][0]["values"]  # heads x rows x cols, rows summing to 1
    assert len(weights) == 4 and all(abs(sum(row) - 1) < 1e-3 for head in weights for row in head)
    for args in (["())"], ["(x"], ["(", "--out", str(tmp_path / "nope" / "x.png")]):
        assert_one_line_error(run_main("explain.py", path, *args, cwd=tmp_path))
    assert not os.path.exists(os.path.join(path, "explain.png"))


def test_an_architecture_without_the_hook_is_refused_in_one_line(tmp_path, monkeypatch):
    path = saved("gru", tmp_path)
    monkeypatch.delattr(archs.ARCHS["gru"], "explain")
    p = run_main("explain.py", path, "((", cwd=tmp_path)
    assert_one_line_error(p)
    assert "explain is not available for gru" in p.stderr


def test_weights_are_taken_apart_from_the_fused_path():
    """Recording changes nothing the model computes, and outside it nothing is recorded."""
    from archs.common import Attention, recording
    model, _ = archs.build("gpt", {**SMALL["gpt"], "vocab_size": len(CODEC)})
    model.eval()
    tokens, _ = CODEC.prompts(["(([", "{"])
    with torch.no_grad():
        plain = model(tokens)
        with recording(model) as weights:
            spelled = model(tokens)
        again = model(tokens)
    assert torch.allclose(plain, spelled, atol=1e-5) and torch.equal(plain, again) and len(weights) == 2
    assert all(m.record is None for m in model.modules() if isinstance(m, Attention))
    real = tokens[1] != PAD
    assert weights[0][1][:, real][..., ~real].sum() == 0, "a real token gives padding no weight"
