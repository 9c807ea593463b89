"""The task contract: every registered task (tasks.TASKS) passes these, so a new task is tested by
registering it. The architecture contract is tests/test_archs.py and test_export.py, each
parametrised over archs.ARCHS."""
import os
from dataclasses import fields

import pytest
import torch
from fastapi.testclient import TestClient

import dataset as D
import scoring
import serve
from codec import Codec
from conftest import run_main
from errors import BadInput
from runs import load_run
from settings import Request
from tasks import TASKS, Task, codec_of, make_task, options_of
from tasks.common import ByLength
from training import train

NAMES = list(TASKS)
SMALL = dict(train_size=600, val_size=40, test_size=60, ood_size=40)


def quick(name) -> dict:
    """Options that keep a tiny run quick for a task drawn by length: lengths 1..12 and OOD
    13..20 (the Chomsky-hierarchy tasks' 41..500 would have an untrained model decode 1000-token
    answers, and their curves run to 160)."""
    return {"max_len": 12, "ood_min_len": 13, "ood_max_len": 20} if issubclass(TASKS[name], ByLength) else {}


def sample(task, n=200, seed=3, ood=False):
    return task.sample(torch.Generator().manual_seed(seed), n, ood=ood)


def full_width(text: str) -> str:
    """What an IME types: ASCII punctuation, letters and digits as their full-width forms."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize("name", NAMES)
def test_declares_the_interface(name):
    task = make_task(name)
    assert isinstance(task, Task) and task.name == name
    assert [f.name for f in options_of(task.Config)] == [f.name for f in fields(task.Config)]
    assert all(f.metadata["help"] for f in options_of(task.Config))
    assert set(task.breakdowns) <= set(sample(task, 1)[0].meta) and all(w >= 1 for w in task.breakdowns.values())
    axis = task.axis()
    assert axis.name and axis.label and 1 <= axis.trained <= axis.limit
    assert all(isinstance(label, str) and label for label in task.extras.values())
    Codec(task.symbols())  # distinct, non-empty symbols


@pytest.mark.parametrize("name", NAMES)
def test_sampling_is_seeded(name):
    task = make_task(name)
    assert sample(task, seed=1) == sample(task, seed=1)
    assert sample(task, seed=1) != sample(task, seed=2)
    assert sample(task, seed=1, ood=True) == sample(task, seed=1, ood=True)


@pytest.mark.parametrize("name", NAMES)
def test_targets_fit_the_codec_and_the_limits(name):
    task = make_task(name)
    codec = codec_of(task)
    for ood in (False, True):
        for e in sample(task, ood=ood):
            for text, limit in ((e.input, task.max_input_len()), (e.target, task.max_target_len())):
                ids = codec.encode(text)
                assert codec.decode(ids) == text and len(ids) <= limit, (text, limit)
            assert e.target.endswith(task.scored(e.target)), "exact match compares the end of an answer (or all of it)"
            shown = task.present(e.input, e.target)
            assert isinstance(shown["answer"], str) and set(shown) <= {"answer", *task.extras}, shown


@pytest.mark.parametrize("name", NAMES)
def test_check_accepts_every_training_input(name):
    """check() agrees with every target the task writes: an input it sampled is a problem of the
    task (no BadInput) and, in distribution, raises no warning; OOD inputs are problems too."""
    task = make_task(name)
    for e in sample(task):
        assert task.check(e.input) == [], e.input
    for e in sample(task, ood=True):
        task.check(e.input)


@pytest.mark.parametrize("name", NAMES)
def test_normalize_reads_what_people_type(name):
    task = make_task(name)
    for e in sample(task, 50):
        assert task.normalize(e.input) == e.input
        assert task.normalize(" ".join(e.input)) == e.input
        assert task.normalize(full_width(e.input)) == e.input, full_width(e.input)


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_disjoint_and_ood_is_new(name, tmp_path):
    folder = D.prepare(D.DataSpec(name, quick(name), **SMALL), tmp_path)
    inputs = {s: {e.input for e in D.load_split(folder, s)} for s in D.SPLITS}
    assert not inputs["ood"] & (inputs["train"] | inputs["test"] | inputs["val"])
    assert not inputs["test"] & inputs["train"] and not inputs["val"] & (inputs["train"] | inputs["test"])


@pytest.mark.parametrize("name", NAMES)
def test_every_script_works_with_it(name, tmp_path, monkeypatch):
    """A tiny run of the task trains and saves, scores, answers at predict.py and on serve.py's page."""
    monkeypatch.chdir(tmp_path)
    m = train(Request("gpt", "20steps", D.DataSpec(name, quick(name), **SMALL), model={"d_model": 32, "n_layer": 1}), quiet=True)
    result = scoring.evaluate_run(m["run"], "cpu")
    assert set(result["test"]["breakdown"]) == set(make_task(name).breakdowns)
    problem = sample(make_task(name), 1)[0].input
    p = run_main("predict.py", m["run"], "--json", problem, cwd=tmp_path)
    assert p.returncode == 0 and '"answer"' in p.stdout, p.stderr
    with TestClient(serve.create_app(load_run(m["run"]), "cpu", max_inputs=4), base_url="http://127.0.0.1") as client:
        assert client.get("/").status_code == 200
        answers = client.post("/predict", json={"inputs": [problem]}).json()["outputs"]
        assert len(answers) == 1 and isinstance(answers[0], str)
    assert os.path.isfile(os.path.join(m["run"], "model.safetensors"))


@pytest.mark.parametrize("name", NAMES)
def test_curve_sets_are_seeded_frozen_and_held_out(name, tmp_path):
    """An accuracy curve's sets (dataset.prepare_curve): every value of the task's axis from 1 to
    4x training, seeded problems the codec reads, none of them a training input, verified on load."""
    task = make_task(name, quick(name))
    axis = task.axis()
    assert axis.trained >= 1 and axis.values() == list(range(1, min(4 * axis.trained, axis.limit) + 1))
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert task.sample_at(gen(), 20, axis.trained) == task.sample_at(gen(), 20, axis.trained)
    codec = codec_of(task)
    for v in (1, axis.trained, axis.values()[-1]):
        for e in task.sample_at(gen(), 20, v):
            assert codec.decode(codec.encode(e.input)) == e.input and codec.decode(codec.encode(e.target)) == e.target
            task.check(e.input)  # a problem of the task, whatever its warnings
    folder = D.prepare_curve(D.DataSpec(name, quick(name)), 4, tmp_path)
    sets = D.load_curve(folder)
    assert list(sets) == axis.values() and all(len(s) <= 4 for s in sets.values()) and len(sets[axis.trained]) == 4
    assert all(D.split_of(e.input) == "test" for s in sets.values() for e in s), "none is a train or validation input"
    assert D.prepare_curve(D.DataSpec(name, quick(name)), 4, tmp_path) == folder
    with open(os.path.join(folder, f"at-{axis.trained}.jsonl"), "a") as f:
        f.write('{"input": "x", "target": "y", "meta": {}}\n')
    with pytest.raises(D.DataError, match="bad line|sha256"):
        D.load_curve(folder)


@pytest.mark.parametrize("name", NAMES)
def test_sample_at_pins_the_axis(name):
    """sample_at(v) draws problems whose axis value (Task.axis_value) is v, in and past training
    (or none, at a value with no problem: binary_addition's `a+b` needs 3 symbols); sample()
    draws them within 1..trained."""
    task = make_task(name)
    for v in (1, 2, task.axis().trained, task.axis().trained + 3, task.axis().trained + 4):
        drawn = {task.axis_value(e) for e in task.sample_at(torch.Generator().manual_seed(v), 50, v)}
        assert drawn in (set(), {v}) and (drawn or v != task.axis().trained), (v, drawn)
    assert all(1 <= task.axis_value(e) <= task.axis().trained for e in sample(task))


def test_a_small_problem_space_trains(tmp_path):
    """`train.py gpt ... --task arith --ops +- --digits 2`: the validation and test splits take the
    distinct inputs there are, and the run trains and saves."""
    p = run_main("train.py", "gpt", "20steps", "--task", "arith", "--ops", "+-", "--digits", "2", "--set", "d_model=32",
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "note: the task's problem space holds" in p.stderr and "saved" in p.stdout


def test_bad_typed_input_is_the_task_s_to_refuse():
    with pytest.raises(BadInput):
        make_task("bracket").check("(]")
    with pytest.raises(BadInput):
        make_task("arith").check("1/0")
