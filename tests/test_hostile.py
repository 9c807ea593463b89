"""Run folders and data folders from someone else: every crafted case is refused in one line by
every script that reads it (exit 2, no traceback), before anything is built or written, and
nothing is written outside the project. A field added to config.json or metrics.json gets its
cases here, the same way."""
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import SMALL, assert_one_line_error, run_main, train_one


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real runs (gru and gpt, 2 s each on small bracket data) in one working folder."""
    cwd = tmp_path_factory.mktemp("hostile")
    _, gru = train_one(cwd, "gru", "2s")
    p = run_main("train.py", "gpt", "2s", *SMALL, cwd=cwd)
    assert p.returncode == 0, p.stderr
    gpt = next(cwd / "models" / d for d in os.listdir(cwd / "models") if d.startswith("gpt"))
    return cwd, {"gru": gru, "gpt": gpt}


def edit_json(name, change):
    def craft(run):
        path = run / name
        d = json.loads(path.read_text())
        result = change(d)
        path.write_text(result if isinstance(result, str) else json.dumps(d))
    return craft


def set_in(name, keys, value):
    """config.json or metrics.json with one value replaced (keys: the path to it)."""
    def change(d):
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit_json(name, change)


def as_text(name, text):
    return lambda run: (run / name).write_text(text)


def nan_weights(run):
    state = load_file(run / "model.safetensors")
    name = next(iter(state))
    state[name][0] = float("nan")
    save_file(state, run / "model.safetensors")


def misshaped_optimizer(run):
    state = torch.load(run / "optimizer.pt", weights_only=True)
    first = next(iter(state["state"].values()))
    first["exp_avg"] = torch.zeros(3, 3)
    torch.save(state, run / "optimizer.pt")


DEEP = "[" * 100_000 + "]" * 100_000

# name -> (the run it is made from, how it is crafted, what the one-line error says)
CASES = {
    "d_model 10^9": ("gru", set_in("config.json", ["model", "d_model"], 10**9), "d_model"),
    "d_model 6000": ("gru", set_in("config.json", ["model", "d_model"], 6000), "does not match"),
    "d_model -5": ("gru", set_in("config.json", ["model", "d_model"], -5), "d_model"),
    "n_layer 10^6": ("gru", set_in("config.json", ["model", "n_layer"], 10**6), "n_layer"),
    "n_head 0": ("gpt", set_in("config.json", ["model", "n_head"], 0), "n_head"),
    "d_model as text": ("gru", set_in("config.json", ["model", "d_model"], "96; rm -rf /"), "d_model"),
    "deep value": ("gru", as_text("config.json", '{"arch": "gru", "model": {"d_model": ' + DEEP + "}}"), "config.json"),
    "5000-digit value": ("gru", as_text("config.json", '{"arch": "gru", "model": {"d_model": ' + "9" * 5000 + "}}"),
                         "config.json"),
    "train_size 10^9": ("gru", set_in("config.json", ["data", "train_size"], 10**9), "train split"),
    "max_len 10^9": ("gru", set_in("config.json", ["data", "options"], {"max_len": 10**9}), "max_len"),
    "max_len as text": ("gru", set_in("config.json", ["data", "options"], {"max_len": "x"}), "max_len"),
    "unknown task": ("gru", set_in("config.json", ["data", "task"], "chess"), "chess"),
    "unknown option": ("gru", set_in("config.json", ["data", "options"], {"rook": 1}), "rook"),
    "train not an object": ("gru", set_in("config.json", ["train"], "fast"), "train"),
    "lr as text": ("gru", set_in("config.json", ["train", "lr"], "x"), "lr"),
    "codec not a list": ("gru", set_in("config.json", ["codec"], {"tokens": 7}), "codec"),
    "config a list": ("gru", as_text("config.json", "[]"), "not a JSON object"),
    "metrics steps as text": ("gru", set_in("metrics.json", ["steps"], "x"), "steps"),
    "metrics total_samples -1": ("gru", set_in("metrics.json", ["total_samples"], -1), "total_samples"),
    "metrics NaN score": ("gru", as_text("metrics.json", '{"test_em": NaN}'), "test_em"),
    "metrics a folder": ("gru", lambda run: ((run / "metrics.json").unlink(), (run / "metrics.json").mkdir()), "metrics.json"),
    "NaN weights": ("gru", nan_weights, "not finite"),
}
SCRIPTS = {
    "predict": ["predict.py", "{run}", "(("],
    "evaluate": ["evaluate.py", "{run}"],
    "export": ["export.py", "{run}"],
    "explain": ["explain.py", "{run}", "((", "--json"],
    "serve": ["serve.py", "{run}", "--port", "65000"],  # refused before it listens
    "resume": ["train.py", "{arch}", "2s", "--resume", "{run}"],
    "init-from": ["train.py", "{arch}", "2s", "--init-from", "{run}"],
}


def crafted(runs, tmp_path, name, change):
    cwd, made = runs
    run = tmp_path / "models" / name.replace(" ", "_").replace("^", "")
    shutil.copytree(made[name], run)
    change(run)
    return cwd, run


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_run_folder_is_one_line_in_every_script(runs, tmp_path, case):
    arch, change, says = CASES[case]
    cwd, run = crafted(runs, tmp_path, arch, change)
    before = sorted(os.listdir(cwd / "models"))
    for script, args in SCRIPTS.items():
        argv = [a.format(run=run, arch=arch) for a in args]
        p = run_main(argv[0], *argv[1:], "--models-dir", str(tmp_path / "out"), cwd=cwd) if script in ("resume", "init-from") \
            else run_main(argv[0], *argv[1:], cwd=cwd)
        assert_one_line_error(p)
        assert p.returncode == 2, (script, p.stderr)
        assert says in p.stderr, (script, p.stderr)
        assert not (tmp_path / "out").exists() or not [d for d in os.listdir(tmp_path / "out") if not d.startswith(".")], \
            f"{script}: nothing trained"
    assert sorted(os.listdir(cwd / "models")) == before


def test_the_leaderboard_ranks_the_good_run_and_lists_every_crafted_one_apart(runs, tmp_path):
    cwd, made = runs
    root = tmp_path / "models"
    shutil.copytree(made["gru"], root / "good")
    for case, (arch, change, _) in CASES.items():
        run = root / case.replace(" ", "_").replace("^", "")
        shutil.copytree(made[arch], run)
        change(run)
    p = run_main("evaluate.py", "--all", "--models-dir", str(root), cwd=cwd)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    ranked = (root / "leaderboard.csv").read_text()
    assert "good" in ranked and not any(case.replace(" ", "_").replace("^", "") in ranked for case in CASES)


def test_resume_checks_its_optimizer_state_before_the_clock(runs, tmp_path):
    cwd, run = crafted(runs, tmp_path, "gru", misshaped_optimizer)
    p = run_main("train.py", "gru", "2s", "--resume", str(run), "--models-dir", str(tmp_path / "out"), cwd=cwd)
    assert_one_line_error(p)
    assert "optimizer.pt does not match the model" in p.stderr
    assert not [d for d in os.listdir(tmp_path / "out") if not d.startswith(".")]


def test_a_recorded_data_dir_is_never_followed(runs, tmp_path):
    """config.json's data_dir (absolute, or climbing out) is where the run once trained: scripts
    score the run on their own data folder, and write nothing where it points."""
    cwd, made = runs
    for i, where in enumerate([str(tmp_path / "elsewhere"), "../../../../../../../tmp/harness-escape-" + tmp_path.name]):
        run = tmp_path / f"run{i}"
        shutil.copytree(made["gru"], run)
        set_in("config.json", ["data_dir"], where)(run)
        for argv in (["evaluate.py", str(run)], ["export.py", str(run)], ["predict.py", str(run), "(("]):
            p = run_main(*argv, cwd=cwd)
            assert p.returncode == 0, p.stderr
        target = where if os.path.isabs(where) else os.path.normpath(os.path.join(cwd, where))
        assert not os.path.exists(target)


def test_a_rewritten_split_is_caught_by_the_runs_recorded_hash(runs, tmp_path):
    """A test split rewritten together with the sha256 in its meta.json passes the folder's own
    check; the run's config.json recorded the original hash, and evaluate.py names both."""
    cwd, made = runs
    shutil.copytree(cwd / "data", tmp_path / "data")
    folder = next(f for f in (tmp_path / "data").iterdir() if f.name.startswith("bracket-") and "curve" not in f.name)
    lines = (folder / "test.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    rows[0]["target"] = rows[1]["target"] if rows[1]["target"] != rows[0]["target"] else rows[0]["target"] + ")"
    (folder / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    import hashlib
    meta = json.loads((folder / "meta.json").read_text())
    meta["sha256"]["test"] = hashlib.sha256((folder / "test.jsonl").read_bytes()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))
    shutil.copytree(made["gru"], tmp_path / "run")
    for argv in (["evaluate.py", "run"], ["train.py", "gru", "2s", "--resume", "run", "--models-dir", "out"]):
        p = run_main(*argv, cwd=tmp_path)
        assert_one_line_error(p)
        assert "is not the data" in p.stderr and meta["sha256"]["test"][:12] in p.stderr


@pytest.mark.parametrize("damage", ["meta a list", "meta without hashes", "folder a file"])
def test_a_damaged_data_folder_is_one_line(runs, tmp_path, damage):
    cwd, made = runs
    shutil.copytree(cwd / "data", tmp_path / "data")
    folder = next(f for f in (tmp_path / "data").iterdir() if f.name.startswith("bracket-") and "curve" not in f.name)
    if damage == "meta a list":
        (folder / "meta.json").write_text("[1, 2]")
    elif damage == "meta without hashes":
        (folder / "meta.json").write_text(json.dumps({"sha256": {"test": 5}}))
    else:
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    shutil.copytree(made["gru"], tmp_path / "run")
    for argv in (["evaluate.py", "run"], ["train.py", "gru", "2s", *SMALL, "--models-dir", "out"]):
        p = run_main(*argv, cwd=tmp_path)
        assert_one_line_error(p)
        assert folder.name in p.stderr


def test_a_mismatched_size_is_refused_before_a_weight_is_allocated(runs, tmp_path, monkeypatch):
    """d_model 6000 against a file of d_model 96: refused from the file's header, the model built
    only on the meta device (building it first took a gigabyte before the shapes were compared)."""
    import archs
    import runs as R
    from errors import RunError
    _, run = crafted(runs, tmp_path, "gru", set_in("config.json", ["model", "d_model"], 6000))
    built_on, real = [], archs.ARCHS["gru"].Model

    def spy(cfg):
        built_on.append(torch.get_default_device().type)
        return real(cfg)
    monkeypatch.setattr(archs.ARCHS["gru"], "Model", spy)
    with pytest.raises(RunError, match="does not match its config.json"):
        R.load_run(run)
    assert built_on == ["meta"]
