"""Fine-tuning: --init-from (grown codec and slots, parent untouched) and --lora for every architecture."""
import hashlib
import json
import os

import pytest
import torch
from safetensors.torch import load_file

import archs
import dataset as D
import infer
import lora
from conftest import SMALL, assert_one_line_error, run_cli, run_main
from runs import load_run
from settings import Request
from tasks import make_task
from training import train

TINY = {"gru": {"d_model": 32}, "lstm": {"d_model": 32}, "tra": {"d_model": 32}, "ber": {"d_model": 32, "n_layer": 1},
        "gpt": {"d_model": 32, "n_layer": 1}, "stack": {"d_model": 32}, "tape": {"d_model": 32}}


def folder_digest(path) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        h.update(name.encode() + open(os.path.join(path, name), "rb").read())
    return h.hexdigest()


def small(task, **options):
    return D.DataSpec(task, options or None, 2000, 100, 100, 100)


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_lora_trains_adapters_only_and_saves_plain_weights(arch, tmp_path):
    common = {"models_dir": str(tmp_path / "models"), "data_dir": str(tmp_path / "data")}
    parent = train(Request(arch=arch, budget="1s", data=small("arith", ops="+-", format="reversed"), model=dict(TINY.get(arch, {})),
                               **common), quiet=True)["run"]
    before = folder_digest(parent)
    m = train(Request(arch=arch, budget="1s", data=small("arith", ops="+-*", format="reversed"), init_from=parent,
                          lora=4, **common), quiet=True)
    assert 0 < m["trainable_params"] < m["params"] / 2 and m["steps"] > 0
    child = load_run(m["run"])  # plain weights: every tool loads the run unchanged
    assert child.config["parent"]["run"] == parent and child.config["train"]["lora"] == 4
    assert child.config["parent"]["data"]["options"] == {"ops": "+-", "format": "reversed"}
    assert folder_digest(parent) == before, "the parent folder is never changed"
    adapters = load_file(os.path.join(m["run"], "adapters.safetensors"))
    name = sorted(adapters)[0].rsplit(".", 1)[0]  # one adapted weight: child = parent + (alpha / r) B A
    w_parent, w_child = load_run(parent).model.state_dict()[name], child.model.state_dict()[name]
    assert torch.allclose(w_child, w_parent + 2.0 * adapters[f"{name}.B"] @ adapters[f"{name}.A"], atol=1e-6)
    assert not os.path.exists(os.path.join(m["run"], "optimizer.pt"))


def test_lora_on_recurrent_weights_changes_the_function():
    """The adapters of nn.GRU's fused weights reach its forward (torch re-reads parametrized weights)."""
    model, _ = archs.build("gru", {"d_model": 16, "vocab_size": 12})
    x = torch.randint(5, 12, (2, 7))
    before = model(x)
    names = lora.add(model, "gru", 2, 4.0, "rnn")
    assert names == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"] and torch.allclose(model(x), before)  # B = 0
    with torch.no_grad():
        model.rnn.parametrizations.weight_hh_l0[0].B.fill_(0.1)
    adapted = model(x)
    assert not torch.allclose(adapted, before)
    lora.merge(model)
    assert torch.allclose(model(x), adapted, atol=1e-6) and not lora.adapters(model)
    assert all(p.requires_grad for p in model.parameters())


def test_init_from_grows_the_codec_and_ber_slots(tmp_path):
    common = {"models_dir": str(tmp_path / "models"), "data_dir": str(tmp_path / "data")}
    parent = train(Request(arch="ber", budget="1s", data=small("arith", ops="+-", digits=2), model=dict(TINY["ber"]),
                               **common), quiet=True)["run"]
    p, _ = run_cli("train.py", "ber", "1s", "--task", "arith", "--ops", "+-", "--digits", "3", "--format", "latex",
                   "--init-from", parent, *SMALL, "--models-dir", common["models_dir"], "--data-dir", common["data_dir"],
                   cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "added to the parent's codec:   = { } \\frac \\times (22 -> 28 tokens" in p.stdout, p.stdout
    assert "ber n_slots 11 -> " in p.stdout
    [child] = [r for r in os.listdir(common["models_dir"]) if r not in os.path.basename(parent) and not r.startswith(".")]
    run = load_run(os.path.join(common["models_dir"], child))
    parent_run = load_run(parent)
    assert run.codec.tokens[: len(parent_run.codec)] == parent_run.codec.tokens, "the parent's ids stay"
    assert run.model.slot_emb.weight.shape[0] > parent_run.model.slot_emb.weight.shape[0]


def test_fine_tuning_bad_input_is_one_line_and_writes_nothing(tmp_path):
    models = tmp_path / "models"
    parent = train(Request(arch="gpt", budget="1s", data=small("bracket"), model=dict(TINY["gpt"]), models_dir=str(models),
                               data_dir=str(tmp_path / "data")), quiet=True)["run"]
    broken = tmp_path / "broken"
    os.makedirs(broken)
    for f in ("config.json", "metrics.json"):
        (broken / f).write_bytes(open(os.path.join(parent, f), "rb").read())
    (broken / "model.safetensors").write_bytes(b"\x00garbage")
    before = sorted(os.listdir(models))
    for args in (["gpt", "1s", "--init-from", "models/missing"],
                 ["gpt", "1s", "--init-from", str(broken)],
                 ["gpt", "1s", "--init-from", parent, "--resume", parent],
                 ["gpt", "1s", "--init-from", parent, "--lora", "0"],
                 ["gpt", "1s", "--init-from", parent, "--lora", "-2"],
                 ["gpt", "1s", "--lora", "4"],
                 ["gpt", "1s", "--init-from", parent, "--lora", "4", "--lora-targets", "conv"],
                 ["gpt", "1s", "--init-from", parent, "--set", "d_model=64"],
                 ["lstm", "1s", "--init-from", parent]):
        p = run_main("train.py", *args, *SMALL, "--models-dir", str(models), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
        assert_one_line_error(p)
        assert sorted(os.listdir(models)) == before, args
    assert "is a gpt run" in p.stderr
    assert json.load(open(os.path.join(parent, "metrics.json")))["steps"] > 0


def test_finetune_bench_protocol(tmp_path, monkeypatch):
    """python -m bench.finetune end to end on a tiny protocol: parent, full and LoRA children,
    scratch; the parent-task score of a child is its exact match on the parent's test split."""
    from bench import finetune as B
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(B, "RESULTS", str(tmp_path / "finetune.csv"))
    monkeypatch.setattr(B, "RUNS_DIR", str(tmp_path / "runs"))
    small = dict(train_size=2000, val_size=100, test_size=150, ood_size=100)
    monkeypatch.setattr(B, "PROTOCOLS", {"tiny": B.Protocol(
        D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, **small),
        D.DataSpec("bracket", {"min_len": 9, "max_len": 12, "max_depth": 4, "ood_min_len": 13, "ood_max_len": 16}, **small),
        "2s", "2s", "4s")})
    assert B.main(["--only", "tiny", "--archs", "gru", "--lora", "2"]) == 0
    import pandas as pd
    df = pd.read_csv(tmp_path / "finetune.csv")
    assert list(df["variant"]) == ["parent", "full", "lora2", "scratch"]
    full, lora_row = df.iloc[1], df.iloc[2]
    assert full["trainable_params"] == full["params"] and lora_row["trainable_params"] < lora_row["params"]
    run = load_run(lora_row["run"])
    exs = D.load_split(D.prepare(D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, **small), "data"), "test")
    assert lora_row["parent_task_em"] == infer.exact_match(run.model, run.codec, exs, make_task("bracket", {"max_len": 8, "max_depth": 4}))
