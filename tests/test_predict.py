"""predict.py: ask a run by argument, on standard input (plain or JSON Lines) and at a prompt."""
import json
import os
import pty
import sys

from conftest import ROOT, assert_one_line_error, run_cli, run_main

CLOSERS = set(")]}】")


def test_standard_input_is_answered_line_by_line(trained_run):
    cwd, run = trained_run
    p, _ = run_cli("predict.py", str(run), cwd=cwd, input="(((\n【{\n")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2 and all(set(line) <= CLOSERS for line in lines), p.stdout


def test_json_lines_warnings_and_errors(trained_run):
    cwd, run = trained_run
    long = "(" * 5 + "()" * 20
    p, _ = run_cli("predict.py", str(run), "--json", cwd=cwd, input=f"( ( [\n{long}\n(a]\n(]\n")
    assert p.returncode == 2, "a problem it could not take makes the exit code 2"
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == 4
    assert rows[0]["problem"] == "((["  and rows[0]["warnings"] == [] and 0 < rows[0]["probability"] <= 1
    assert rows[0]["answer"] == rows[0]["output"] and set(rows[0]["answer"]) <= CLOSERS
    assert "length 45 is outside the 1..30" in rows[1]["warnings"][0]
    assert "'a'" in rows[2]["error"] and "allowed: ( ) 【 】" in rows[2]["error"]
    assert "closes wrongly at position 2" in rows[3]["error"]


def test_problems_as_arguments(trained_run):
    cwd, run = trained_run
    p, _ = run_cli("predict.py", str(run), "(((", cwd=cwd)
    assert p.returncode == 0 and "((( →" in p.stdout and "%)" in p.stdout, p.stdout + p.stderr
    p, _ = run_cli("predict.py", "--latest", "((", "x", cwd=cwd)
    assert p.returncode == 2 and "(( →" in p.stdout and "error: 'x' has symbol this model does not know" in p.stdout


def test_arithmetic_is_read_as_typed_and_shown_in_natural_order(arith_run):
    cwd, run = arith_run
    p, _ = run_cli("predict.py", str(run), "--json", "12 + 3 =", "45 − 7", "12 × 3", cwd=cwd)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["problem"] for r in rows] == ["12+3", "45-7", "12*3"]
    for r in rows:  # the run writes answers reversed; people read them the natural way
        assert r["answer"] == r["output"][::-1] and r["latex"].endswith(f"= {r['answer']}")
    assert rows[0]["latex"].startswith("12 + 3 =") and rows[2]["latex"].startswith("12 \\times 3 =")
    assert "the operation * was not in training" in rows[2]["warnings"][0]


def test_prompt_in_a_terminal(trained_run):
    from test_train import read_until
    cwd, run = trained_run
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, os.path.join(ROOT, "predict.py"), str(run)])
    read_until(fd, "problem>")
    os.write(fd, b"(((\n")
    assert "((( →" in read_until(fd, "problem>")
    os.write(fd, b"(?\n")
    assert "error: '(?' has symbol this model does not know: '?'" in read_until(fd, "problem>"), "the prompt goes on"
    os.write(fd, b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_predict_errors(trained_run, tmp_path):
    cwd, _ = trained_run
    p, _ = run_cli("predict.py", "models/missing", "(((", cwd=cwd)  # the script itself
    assert_one_line_error(p)
    p = run_main("predict.py", "--latest", "--device", "tpu", cwd=cwd)
    assert_one_line_error(p)
    p = run_main("predict.py", cwd=tmp_path)  # no run, no terminal
    assert_one_line_error(p)
