"""Tasks and data on disk: labels checked against independent solvers, splits, files, caches."""
import json
import os
import re
from fractions import Fraction

import pytest
import torch
from safetensors.torch import save_file

import dataset as D
import layouts
from codec import EOS, MASK
from conftest import SMALL, assert_one_line_error, run_cli
from tasks import Example, codec_of, make_task

OPENERS = {"(": ")", "[": "]", "{": "}", "【": "】"}


def check_bracket(inp: str, target: str, max_depth: int):
    """Independent checker: the input never closes wrongly, and the target closes exactly what is
    open, innermost first (so input + target is balanced and the target is as short as possible)."""
    stack = []
    for c in inp:
        if c in OPENERS:
            stack.append(c)
            assert len(stack) <= max_depth
        else:
            assert stack and OPENERS[stack.pop()] == c, f"{inp!r} closes wrongly"
    assert len(target) == len(stack)
    for c in target:
        assert OPENERS[stack.pop()] == c
    assert not stack


@pytest.mark.parametrize("ood", [False, True])
def test_bracket_labels_are_right(ood):
    task = make_task("bracket")
    exs = task.sample(torch.Generator().manual_seed(1), 20000, ood=ood)
    lo, hi = (31, 60) if ood else (1, 30)
    for e in exs:
        check_bracket(e.input, e.target, task.cfg.max_depth)
        assert lo <= len(e.input) <= hi and e.meta["length"] == len(e.input) and e.meta["depth"] == len(e.target)
    assert {len(e.target) for e in exs} >= set(range(0, 8)), "answers of many lengths, empty included"
    assert {c for e in exs for c in e.input} == set("()【】{}[]")


def solve_arith(text: str) -> Fraction:
    m = re.fullmatch(r"(-?[\d.]+)([-+*/])\(?(-?[\d.]+)\)?", text)
    a, op, b = Fraction(m.group(1)), m.group(2), Fraction(m.group(3))
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[op]


@pytest.mark.parametrize("fmt", ["plain", "reversed", "latex", "scratch"])
def test_arith_labels_are_right(fmt):
    task = make_task("arith", {"digits": 2, "negatives": True, "decimals": True, "format": fmt})
    exs = task.sample(torch.Generator().manual_seed(2), 5000)
    for e in exs:
        value = solve_arith(e.input)
        assert value is not None, "division by zero generated"
        shown = {"plain": e.target, "reversed": e.target[::-1], "latex": e.target.split(" = ")[-1],
                 "scratch": e.target if e.meta["op"] == "/" else e.target.rpartition("=")[2][::-1]}[fmt]
        assert Fraction(shown) == value, e
        if fmt == "scratch" and e.meta["op"] == "*":  # partial products: the digits of b from the lowest, at their places
            a, b = (str(int(x.strip("()-").replace(".", ""))) for x in e.input.split("*"))
            parts = [int(p[::-1]) for p in e.target.rpartition("=")[0].split("+")]
            assert parts == [int(a) * int(d) * 10**i for i, d in enumerate(reversed(b))], e
            assert abs(value) * 10 ** sum(len(x.strip("()").partition(".")[2]) for x in e.input.split("*")) == sum(parts), e
        elif fmt == "scratch":
            assert "=" not in e.target and e.target == task.scored(e.target), e
        assert not re.search(r"\.\d{3}", shown) and not shown.endswith("."), "at most two decimals, shortest form"
    assert {e.meta["digits"] for e in exs} == {"1x1", "1x2", "2x1", "2x2"}
    assert {e.meta["op"] for e in exs} == set("+-*/")
    assert any(e.meta["negative"] for e in exs) and any(e.meta["decimal"] for e in exs)
    if fmt == "latex":
        assert any(e.target.startswith("\\frac{") for e in exs) and any("\\times" in e.target for e in exs)


def test_arith_switches_and_ood():
    task = make_task("arith", {"ops": "+-", "digits": 3})
    exs = task.sample(torch.Generator().manual_seed(3), 3000)
    assert all(not e.meta["negative"] and not e.meta["decimal"] and e.meta["op"] in "+-" for e in exs)
    ood = task.sample(torch.Generator().manual_seed(3), 2000, ood=True)
    assert all("4" in e.meta["digits"] and max(map(int, e.meta["digits"].split("x"))) == 4 for e in ood)
    assert all(Fraction(e.target) == solve_arith(e.input) for e in ood)


def test_split_files(tmp_path):
    spec = D.DataSpec("bracket", None, train_size=20000, val_size=1000, test_size=2000, ood_size=500, seed=0)
    folder = D.prepare(spec, tmp_path)
    assert D.prepare(spec, tmp_path) == folder, "the same spec names the same folder"
    splits = {s: D.load_split(folder, s) for s in D.SPLITS}
    ins = {s: {e.input for e in exs} for s, exs in splits.items()}
    assert len(splits["test"]) == 2000 and len(ins["test"]) == 2000 and len(ins["val"]) == 1000
    assert not ins["train"] & ins["test"] and not ins["train"] & ins["val"] and not ins["val"] & ins["test"]
    assert all(31 <= len(e.input) <= 60 for e in splits["ood"])
    meta = json.load(open(os.path.join(folder, "meta.json")))
    assert set(meta["sha256"]) == set(D.SPLITS)
    # the same spec written elsewhere is byte for byte the same (seeded)
    assert D.read_meta(D.prepare(spec, tmp_path / "again"))["sha256"] == meta["sha256"]


def test_a_change_in_how_answers_are_written_makes_a_new_folder(tmp_path, monkeypatch):
    """A data folder is never reused after the task's code writes its targets differently (here
    one format's answers change): the folder's name holds a fingerprint of the labels."""
    from tasks.arith import Arith
    spec = D.DataSpec("arith", {"ops": "+*", "digits": 2, "format": "scratch"}, 500, 50, 50, 50)
    before = D.prepare(spec, tmp_path)
    answer = Arith.answer
    monkeypatch.setattr(Arith, "answer", lambda self, a, op, b, value: answer(self, a, op, b, value).replace("+", "-"))
    after = D.prepare(spec, tmp_path)
    assert after != before and D.read_meta(after)["labels"] != D.read_meta(before)["labels"]
    assert any("-" in e.target for e in D.load_split(after, "train"))
    assert not any("-" in e.target for e in D.load_split(before, "train"))
    monkeypatch.setattr(Arith, "answer", answer)
    assert D.prepare(spec, tmp_path) == before


def test_changed_or_broken_files_are_refused(tmp_path):
    folder = D.prepare(D.DataSpec("bracket", None, 500, 50, 50, 50), tmp_path)
    path = os.path.join(folder, "test.jsonl")
    lines = open(path).read().splitlines()
    with open(path, "w") as f:
        f.write("\n".join(lines[:3] + ['{"input": "((", "target": ")"}'] + lines[4:]) + "\n")
    with pytest.raises(D.DataError, match=r"test.jsonl:4: bad line"):
        D.load_split(folder, "test")
    lines[4] = lines[4].replace('"target": "', '"target": "(')
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(D.DataError, match="sha256"):
        D.load_split(folder, "test")


def test_tokens_come_from_the_checked_split(tmp_path):
    """The train split's tensors are encoded from its JSON Lines file, checked line by line and by
    sha256, every time: a token cache left in the folder (older versions wrote one), poisoned or
    not, is never read, and a changed JSON Lines file is refused."""
    folder = D.prepare(D.DataSpec("bracket", None, 500, 50, 50, 50), tmp_path)
    codec = codec_of(make_task("bracket"))
    fresh = codec.batch(D.load_split(folder, "train"))
    poisoned = {k: torch.zeros_like(v) for k, v in vars(fresh).items()}
    save_file(poisoned, os.path.join(folder, f"train.{codec.key()}.tokens.safetensors"),
              metadata={"sha256": D.read_meta(folder)["sha256"]["train"]})
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))  # noqa: E731
    assert same(D.load_batch(folder, "train", codec), fresh)
    path = os.path.join(folder, "train.jsonl")
    with open(path, "a") as f:
        f.write('{"input": "(", "target": ")", "meta": {}}\n')
    with pytest.raises(D.DataError, match="sha256"):
        D.load_batch(folder, "train", codec)


def test_a_small_problem_space_fills_what_it_can(tmp_path, capsys):
    """Splits of a problem space smaller than asked take every distinct input there is, say so in
    one line each, and stay disjoint; only an empty split is an error."""
    spec = D.DataSpec("arith", {"digits": 1, "ops": "+"}, 100, 10, 2000, 10)
    folder = D.prepare(spec, tmp_path)
    val, test = D.load_split(folder, "val"), D.load_split(folder, "test")
    assert 0 < len(val) < 10 and 0 < len(test) < 2000 and len(D.load_split(folder, "train")) == 100
    assert len({e.input for e in test}) == len(test) and not {e.input for e in val} & {e.input for e in test}
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 2 and "val" in notes[0] and "test" in notes[1]
    one = D.DataSpec("bracket", {"kinds": "()", "min_len": 1, "max_len": 1, "ood_min_len": 1, "ood_max_len": 1}, 10, 1, 1, 1)
    with pytest.raises(D.DataError, match="no (val|test|train) inputs"):
        D.prepare(one, tmp_path)


def test_layouts():
    codec = codec_of(make_task("bracket"))
    b = codec.batch([Example("((", "))", {}), Example("(", ")", {})])
    x, y = layouts.decoder_sequences(b)
    assert codec.decode(x[0]) == "((" + "))" and [codec.tokens[i] for i in x[0][:2]] == ["<bos>", "("]
    assert [t for t in y[1].tolist() if t != -100] == codec.encode(")") + [EOS]
    xs, slot_pos = layouts.slot_inputs(b.prompt, b.prompt_len, 4)
    ys = layouts.slot_labels(b, 4)
    assert xs[1, slot_pos[1]].tolist() == [MASK] * 4 and ys[1].tolist() == [codec.encode(")")[0], EOS, -100, -100]


def test_dataset_cli(tmp_path):
    p, _ = run_cli("dataset.py", "--task", "arith", "--format", "latex", *SMALL, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "test" in p.stdout and len(list((tmp_path / "data").iterdir())) == 1
    p, _ = run_cli("dataset.py", "--task", "arith", "--max-len", "5", cwd=tmp_path)
    assert_one_line_error(p)


@pytest.mark.parametrize("options", [{"digits": 2, "negatives": True, "decimals": True},
                                     {"ops": "+-", "digits": 3, "format": "reversed"},
                                     {"ops": "*/", "digits": 2, "decimals": True}])
def test_arith_metadata_agrees_with_the_text_and_ood_is_out_of_distribution(tmp_path, options):
    """Regression: a decimal operand drawn as 35.0 was written 35, so a '3-digit' OOD problem could
    be a 2-digit one (2.55% of the four-operation OOD split, some of them test inputs word for word)."""
    from tasks.arith import digits, parse
    task = make_task("arith", options)
    d = task.cfg.digits
    for ood in (False, True):
        for e in task.sample(torch.Generator().manual_seed(4), 20000, ood=ood):
            a, op, b = parse(e.input)
            assert e.meta == {"op": op, "digits": f"{digits(a)}x{digits(b)}", "negative": "-" in (a[0], b[0]),
                              "decimal": "." in a + b}, e
            assert max(digits(a), digits(b)) == d + 1 if ood else max(digits(a), digits(b)) <= d, e
    folder = D.prepare(D.DataSpec("arith", options, 20000, 200, 500, 2000), tmp_path)
    seen = {e.input for s in ("train", "val", "test") for e in D.load_split(folder, s)}
    assert not seen & {e.input for e in D.load_split(folder, "ood")}


def test_another_ood_range_leaves_train_val_and_test_alone(tmp_path):
    from tasks.arith import digits, parse
    base = {"ops": "+-", "digits": 3, "format": "reversed"}
    a = D.read_meta(D.prepare(D.DataSpec("arith", base, 3000, 100, 200, 300), tmp_path))
    folder = D.prepare(D.DataSpec("arith", {**base, "ood_min_digits": 5, "ood_max_digits": 6}, 3000, 100, 200, 300), tmp_path)
    b = D.read_meta(folder)
    assert all(a["sha256"][s] == b["sha256"][s] for s in ("train", "val", "test")) and a["sha256"]["ood"] != b["sha256"]["ood"]
    longest = {max(digits(x) for x in parse(e.input)[::2]) for e in D.load_split(folder, "ood")}
    assert longest == {5, 6}
    with pytest.raises(D.DataError, match="ood_min_digits"):
        make_task("arith", {"digits": 3, "ood_min_digits": 3})
