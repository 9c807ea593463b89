"""export.py: ONNX export with parity for every architecture, int8, the runtimes, and bad input."""
import json
import os
import re
import shutil
import subprocess

import pytest

import archs
import dataset as D
import infer
import layouts
import onnxexport
import onnxrun
from conftest import ROOT, assert_one_line_error, run_cli, run_main
from errors import OnnxError
from runs import load_run
from settings import Request
from training import train

TINY = {"gru": {"d_model": 32}, "lstm": {"d_model": 32, "places": True}, "tra": {"d_model": 32, "places": True, "place_bias": 2},
        "ber": {"d_model": 32, "n_layer": 1, "place_bias": 2}, "gpt": {"d_model": 32, "n_layer": 1, "places": True, "place_bias": 2}}
# digit places in the prompt and in the state of the step graphs (with place_bias the keys' or the memory's places too)
ARITH = ("lstm", "tra", "ber", "gpt")
EXPORTABLE = [a for a, mod in archs.ARCHS.items() if mod.EXPORT is not None]  # the others: test_export_refuses_in_one_line


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    runs = {}
    for arch in EXPORTABLE:
        task = ("arith", {"ops": "+-", "format": "reversed"}) if arch in ARITH else ("bracket", None)
        m = train(Request(arch=arch, budget="2s", data=D.DataSpec(task[0], task[1], 2000, 100, 150, 100),
                              model=dict(TINY[arch]), models_dir=str(root / "models"), data_dir=str(root / "data")), quiet=True)
        runs[arch] = m["run"]
    return root, runs


@pytest.fixture(scope="module")
def exported(tiny_runs):
    """exported(arch) -> export.py's report on that tiny run, exported (with int8) once for the
    tests below that read its graphs (an export takes 2-7 s)."""
    _, runs = tiny_runs
    infos = {}

    def get(arch):
        if arch not in infos:
            infos[arch] = onnxexport.export(runs[arch], int8=True, log=lambda *_: None)
        return infos[arch]
    return get


@pytest.mark.parametrize("arch", EXPORTABLE)
def test_export_answers_like_pytorch(tiny_runs, exported, arch):
    root, runs = tiny_runs
    info = exported(arch)
    assert info["parity"]["same_answers"] == info["parity"]["problems"] == 100
    files = set(os.listdir(runs[arch]))
    graphs = {"model.onnx", "model.int8.onnx"} | ({"step.onnx", "step.int8.onnx"} if arch != "ber" else set())
    assert graphs | {"weights.data", "weights.int8.data", "codec.json", "export.json"} <= files
    assert not any(f.startswith(".tmp-") for f in files)
    assert json.load(open(os.path.join(runs[arch], "export.json")))["layout"] == load_run(runs[arch]).model.layout
    assert info["sizes"]["weights.int8.data"] <= info["sizes"]["weights.data"]
    torch_run, onnx_run = load_run(runs[arch]), load_run(runs[arch], runtime="onnx")
    folder = D.prepare(D.DataSpec(**torch_run.config["data"]), torch_run.config["data_dir"])
    cap = infer.max_new_tokens(torch_run.task)
    for split in ("test", "ood"):  # the same greedy answers and probabilities, dynamic batch and length included
        inputs = [e.input for e in D.load_split(folder, split)]
        (ours, p_ours), (theirs, p_theirs) = (infer.answers(r.model, r.codec, inputs, cap) for r in (torch_run, onnx_run))
        assert ours == theirs and p_ours == pytest.approx(p_theirs, abs=1e-4)
    int8 = load_run(runs[arch], runtime="int8")
    assert 0 <= infer.exact_match(int8.model, int8.codec, D.load_split(folder, "test"), int8.task) <= 1
    import onnx  # int8: every product with a weight is an 8-bit MatMulNBits; products of activations stay MatMul
    for name in graphs - {"model.onnx", "step.onnx"}:
        g = onnx.load(os.path.join(runs[arch], name)).graph
        weights = {i.name for i in g.initializer}
        quantised = [n for n in g.node if n.op_type == "MatMulNBits"]
        assert quantised and all(next(a.i for a in n.attribute if a.name == "bits") == 8 for n in quantised)
        assert not any(n.op_type == "MatMul" and set(n.input) & weights for n in g.node)


@pytest.mark.parametrize("arch", ["gru", "lstm", "tra", "gpt"])
def test_decoding_steps_carry_the_state(tiny_runs, exported, arch, monkeypatch):
    """model.onnx reads each prompt once (a recurrent model once per prompt length), then every
    step.onnx call takes one token per row and the state, whose past grows by one each step."""
    root, runs = tiny_runs
    exported(arch)
    # A tiny run may answer <eos> at once; greedy decoding that knows no <eos> makes every step
    # (the graphs know no <eos>: the decoding loop around them does).
    monkeypatch.setattr(layouts, "EOS", -1)
    run = load_run(runs[arch], runtime="onnx")
    calls = []
    for which in ("first", "next"):
        graph = getattr(run.model, which)
        real = graph.sess.run
        graph.sess.run = lambda names, feed, _real=real, _which=which: calls.append((_which, {k: v.shape for k, v in feed.items()})) \
            or _real(names, feed)
    inputs = ["1+2", "12+34", "5-67", "89+0"] if arch in ARITH else ["((", "[(【", "{", "(([["]
    answers, _ = infer.answers(run.model, run.codec, inputs, 12)
    torch_run = load_run(runs[arch])
    assert answers == infer.answers(torch_run.model, torch_run.codec, inputs, 12)[0]
    reads = [c for c in calls if c[0] == "first"]
    lengths = {len(run.codec.encode(x)) for x in inputs}
    assert len(reads) == (len(lengths) if arch in ("gru", "lstm") else 1)
    steps = [shapes for which, shapes in calls if which == "next"]
    assert len(steps) == 11 and all(s["tokens"] == (4, 1) for s in steps)
    if arch in ("tra", "gpt"):
        assert [s["past_k"][3] for s in steps] == list(range(steps[0]["past_k"][3], steps[0]["past_k"][3] + len(steps)))


def ort_run_checked(sess, feed):
    """sess's outputs for feed, each checked against the shape the graph declares: a fixed
    dimension its size, a named one ("length", "past + 1") the size of the input dimension it
    names (a name no input has, the same size wherever it appears)."""
    sizes = {}
    for i in sess.get_inputs():
        for axis, d in enumerate(i.shape):
            if isinstance(d, str):
                assert sizes.setdefault(d, feed[i.name].shape[axis]) == feed[i.name].shape[axis], (i.name, d)
    outs = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})
    for o, value in zip(sess.get_outputs(), outs):
        assert len(o.shape) == value.ndim, o.name
        for axis, d in enumerate(o.shape):
            assert isinstance(d, (int, str)), f"{o.name} axis {axis} is declared neither fixed nor named"
            if isinstance(d, int):
                assert value.shape[axis] == d, (o.name, axis, o.shape, value.shape)
                continue
            name, sign, c = re.fullmatch(r"(\w+)(?: ([+-]) (\d+))?", d).groups()
            offset = int(c or 0) * (-1 if sign == "-" else 1)
            assert value.shape[axis] == sizes.setdefault(name, value.shape[axis] - offset) + offset, (o.name, axis, o.shape, value.shape)
    return outs


@pytest.mark.parametrize("arch", EXPORTABLE)
def test_declared_output_shapes_hold_at_every_length(tiny_runs, exported, arch, capfd):
    """Both graphs' outputs have the shapes they declare at every prompt length and batch size, for
    several steps, and onnxruntime at its default log level (warnings) has nothing to say."""
    import onnxruntime as ort
    root, runs = tiny_runs
    exported(arch)
    run, info = load_run(runs[arch]), json.load(open(os.path.join(runs[arch], "export.json")))
    sess = {f: ort.InferenceSession(os.path.join(runs[arch], f), providers=["CPUExecutionProvider"]) for f in info["graphs"]}
    folder, by_length = D.prepare(D.DataSpec(**run.config["data"]), run.config["data_dir"]), {}
    for e in D.load_split(folder, "test") + D.load_split(folder, "ood"):
        by_length.setdefault(len(run.codec.encode(e.input)), []).append(e)
    assert len(by_length) >= 5
    capfd.readouterr()
    for es in by_length.values():
        for batch in (es[:1], es[:3]):
            b = run.codec.batch(batch)
            prompt = b.prompt.numpy()
            if info["layout"] == "slots":
                x, slot_pos = layouts.slot_inputs(b.prompt, b.prompt_len, info["n_slots"])
                ort_run_checked(sess["model.onnx"], {"tokens": x.numpy(), "slot_pos": slot_pos.numpy()})
                continue
            first = prompt[:, :1].copy()
            first[:] = onnxexport.BOS
            inputs = {"tokens": prompt} if info["layout"] == "decoder" else {"src": prompt, "tokens": first}
            outs = ort_run_checked(sess["model.onnx"], inputs)
            for _ in range(3):
                feed = {"tokens": outs[0][:, -1:].argmax(-1), **{f"past_{k}": v for k, v in zip(info["state"], outs[1:])}}
                outs = ort_run_checked(sess["step.onnx"], feed)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("arch", EXPORTABLE)
def test_weights_are_stored_once(tiny_runs, exported, arch):
    """A runtime's graphs hold no weights: every initializer of onnxexport.SMALL bytes or more lies in
    its one data file, where no tensor is stored twice and nothing else is kept but alignment."""
    import onnx
    import safetensors.torch
    root, runs = tiny_runs
    exported(arch)
    n_params = sum(t.numel() for t in safetensors.torch.load_file(os.path.join(runs[arch], "model.safetensors")).values())
    for rt in ("onnx", "int8"):
        data = open(os.path.join(runs[arch], onnxrun.DATA[rt]), "rb").read()
        stored, used_by = {}, []
        for name in onnxrun.FILES[rt][:1 if arch == "ber" else 2]:
            g = onnx.load(os.path.join(runs[arch], name), load_external_data=False).graph
            used_by.append(set())
            for t in g.initializer:
                if t.data_location != onnx.TensorProto.EXTERNAL:
                    assert onnx.numpy_helper.to_array(t).nbytes < onnxexport.SMALL, (name, t.name)
                    continue
                ext = {e.key: int(e.value) if e.key != "location" else e.value for e in t.external_data}
                assert ext["location"] == onnxrun.DATA[rt]
                stored[ext["offset"]] = data[ext["offset"]: ext["offset"] + ext["length"]]
                used_by[-1].add(ext["offset"])
        assert len(set(stored.values())) == len(stored), "a tensor is stored twice"
        assert len(data) < sum(map(len, stored.values())) + 64 * len(stored)
        if len(used_by) == 2:
            assert len(used_by[0] & used_by[1]) >= 0.5 * len(used_by[1]), "the graphs share their weights"
    assert os.path.getsize(os.path.join(runs[arch], onnxrun.DATA["onnx"])) < 1.1 * 4 * n_params + 64 * 100


NODE_CLIENT = os.path.join(ROOT, "examples", "node")


def node_or_skip():
    node = shutil.which("node")
    if node and os.path.isdir(os.path.join(NODE_CLIENT, "node_modules", "onnxruntime-node")):
        return node
    if os.environ.get("CI"):
        pytest.fail("CI must test the Node.js client: it needs node, and npm to install examples/node (scripts/test.sh does)")
    pytest.skip("no Node.js, or examples/node not installed (scripts/test.sh installs it where npm is): the Node client is not tested")


@pytest.mark.parametrize("arch", [*EXPORTABLE, "ber-refine"])
def test_node_client_answers_like_predict(tiny_runs, exported, arch, tmp_path):
    """examples/node/decode.js, reading only export.json, codec.json and the graphs, writes
    predict.py's answers for every layout (decoder: gru, lstm, gpt; encdec: tra; slots: ber, in one
    pass and with Mask-Predict), with nothing on its standard error."""
    node = node_or_skip()
    root, runs = tiny_runs
    if arch == "ber-refine":
        m = train(Request(arch="ber", budget="30steps", data=D.DataSpec("bracket", None, 2000, 100, 150, 100),
                              model={"d_model": 32, "n_layer": 1, "refine": True}, models_dir=str(tmp_path / "models"),
                              data_dir=str(root / "data")), quiet=True)
        run = m["run"]
        onnxexport.export(run, log=lambda *_: None)
    else:
        exported(arch)
        run = runs[arch]
    torch_run = load_run(run)
    folder = D.prepare(D.DataSpec(**torch_run.config["data"]), torch_run.config["data_dir"])
    problems = [e.input for split in ("test", "ood") for e in D.load_split(folder, split)[:25]]
    p, _ = run_cli("predict.py", run, "--json", cwd=root, input="\n".join(problems) + "\n")
    assert p.returncode == 0, p.stderr
    want = [json.loads(line)["output"] for line in p.stdout.splitlines()]
    q = subprocess.run([node, os.path.join(NODE_CLIENT, "decode.js"), run], input="\n".join(problems) + "\n",
                       capture_output=True, text=True, timeout=120)
    assert q.returncode == 0 and q.stderr == "", q.stderr
    assert q.stdout.split("\n")[:-1] == want and len(want) == 50
    q = subprocess.run([node, os.path.join(NODE_CLIENT, "decode.js"), run], input="\u00a7\n", capture_output=True, text=True, timeout=60)
    assert q.returncode == 2 and "does not know" in q.stderr and q.stdout == ""


def test_runtimes_from_the_command_line(tiny_runs, exported):
    root, runs = tiny_runs
    run = runs["gru"]
    exported("gru")
    p, _ = run_cli("evaluate.py", run, "--runtime", "onnx", "--device", "cpu", cwd=root)
    assert p.returncode == 0 and "onnx runtime" in p.stdout, p.stderr
    p, _ = run_cli("predict.py", run, "--runtime", "onnx", "--json", cwd=root, input="(((\n")
    assert p.returncode == 0 and json.loads(p.stdout)["problem"] == "(((", p.stderr


def test_runtimes_bench_measures_all_three(tiny_runs, monkeypatch, tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("runtimes", os.path.join(os.path.dirname(onnxexport.__file__), "bench", "runtimes.py"))
    R = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(R)
    root, runs = tiny_runs
    monkeypatch.setattr(R, "RESULTS", str(tmp_path / "runtimes.csv"))
    assert R.main([runs["tra"], "--single", "5", "--commit"]) == 0
    import pandas as pd
    df = pd.read_csv(tmp_path / "runtimes.csv")
    assert list(df["runtime"]) == ["torch", "onnx", "int8"] and (df["latency_ms_p50"] > 0).all()
    assert df.loc[1, "test_same_as_torch"] == 1.0 and df.loc[1, "test_em"] == df.loc[0, "test_em"]
    assert df.loc[2, "file_kib"] < df.loc[1, "file_kib"]


def test_export_bad_input(tiny_runs, exported, tmp_path, monkeypatch):
    root, runs = tiny_runs
    exported("gru")
    made = {"model.onnx", "step.onnx", "model.int8.onnx", "step.int8.onnx", "weights.data", "weights.int8.data", "codec.json",
            "export.json"}

    def copy(with_export):  # the tiny gru run, with or without its export
        shutil.rmtree(tmp_path / "gru", ignore_errors=True)
        shutil.copytree(runs["gru"], tmp_path / "gru", ignore=None if with_export else lambda _, names: made & set(names))
        return str(tmp_path / "gru")
    run = copy(with_export=False)
    p = run_main("evaluate.py", run, "--runtime", "int8", cwd=root)  # never exported
    assert_one_line_error(p)
    assert "export it first with: python export.py" in p.stderr and "--int8" in p.stderr
    p, _ = run_cli("export.py", "models/missing", cwd=root)
    assert_one_line_error(p)
    run = copy(with_export=True)
    with open(os.path.join(run, "model.onnx"), "r+b") as f:  # damage it
        f.truncate(1000)
    p = run_main("predict.py", run, "--runtime", "onnx", "(((", cwd=root)
    assert_one_line_error(p)
    assert "model.onnx is not a usable ONNX model" in p.stderr
    run = copy(with_export=True)
    os.unlink(os.path.join(run, "weights.data"))  # the graphs without their weights
    p = run_main("predict.py", run, "--runtime", "onnx", "(((", cwd=root)
    assert_one_line_error(p)
    assert "has no weights.data" in p.stderr and "export again with: python export.py" in p.stderr
    run = copy(with_export=True)
    info = json.load(open(os.path.join(run, "export.json")))
    del info["state"]  # an export made before the step graph
    json.dump(info, open(os.path.join(run, "export.json"), "w"))
    p = run_main("predict.py", run, "--runtime", "onnx", "(((", cwd=root)
    assert_one_line_error(p)
    assert "export.json does not describe this run's export; export again with: python export.py" in p.stderr
    run = copy(with_export=False)
    monkeypatch.setattr(onnxexport, "parity", lambda run, model, inputs, ours: (99, "'((': PyTorch '))', onnxruntime ')'", []))
    with pytest.raises(OnnxError, match="disagrees with PyTorch on 1 of 100 validation problems, first '\\(\\('"):
        onnxexport.export(run, log=lambda *_: None)
    left = os.listdir(run)
    assert not {"model.onnx", "step.onnx", "weights.data", "export.json"} & set(left) and not any(f.startswith(".tmp-") for f in left)


@pytest.mark.parametrize("arch", ["tra", "ber", "gpt"])
def test_learned_positions_export_with_parity(tmp_path, arch):
    """FIRE's bias, a small network of the positions, goes into the graphs and answers alike."""
    m = train(Request(arch=arch, budget="30steps", data=D.DataSpec("bracket", None, 2000, 100, 150, 100),
                          model={"d_model": 32, "n_layer": 1, "pos": "fire"}, models_dir=str(tmp_path / "models"),
                          data_dir=str(tmp_path / "data")), quiet=True)
    info = onnxexport.export(m["run"], log=lambda *_: None)
    assert info["parity"]["same_answers"] == info["parity"]["problems"] == 100


@pytest.mark.parametrize("arch", [a for a in archs.ARCHS if a not in EXPORTABLE])
def test_export_refuses_in_one_line(arch, tmp_path):
    """An architecture that declares no EXPORT (stack, tape: a Python loop over the tokens) is
    refused by export.py in one line, before anything is written."""
    m = train(Request(arch=arch, budget="3steps", data=D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, 500, 50, 50, 50),
                      model={"d_model": 16}, models_dir=str(tmp_path / "models"), data_dir=str(tmp_path / "data")), quiet=True)
    before = set(os.listdir(m["run"]))
    p = run_main("export.py", m["run"], cwd=tmp_path)
    assert_one_line_error(p)
    assert f"export to ONNX is not available for {arch}" in p.stderr and set(os.listdir(m["run"])) == before
