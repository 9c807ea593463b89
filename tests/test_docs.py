"""The README and its Japanese twin, and the rule that code states rules: measured figures, dates
and seeds live in bench/results and docs/, not in the code."""
import ast
import io
import os
import re
import subprocess
import tokenize

from conftest import ROOT


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def test_readme_is_a_short_guide():
    text = read("README.md")
    assert len(text.splitlines()) <= 300
    for section in ("## Two commands on a fresh machine", "## Layout", "## A ten-minute tour", "## Results",
                    "## Adding a task", "## Adding an architecture"):
        assert section in text, section
    assert text.index("## Layout") < text.index("## A ten-minute tour")


def test_readme_results_are_the_generated_tables(monkeypatch):
    """The tables between the markers are what `python -m bench --report` writes from
    bench/results/runs.csv, so they cannot drift from the results."""
    import bench.run as bench
    monkeypatch.chdir(ROOT)
    text = read("README.md")
    block = text.split(bench.README_BEGIN, 1)[1].split(bench.README_END, 1)[0]
    expected = bench.readme_tables(bench.load_results())
    assert block == "\n" + expected and "| gru" in expected


def test_chomsky_table_is_the_generated_one(monkeypatch):
    """docs/chomsky.md's table is what `python -m bench --report` writes from runs.csv (the Chomsky
    presets' rows beside the paper's Table 2)."""
    import bench.run as bench
    from bench import chomsky
    monkeypatch.chdir(ROOT)
    block = read("docs/chomsky.md").split(chomsky.BEGIN, 1)[1].split(chomsky.END, 1)[0]
    rows, _ = bench.latest_settings(bench.load_results())  # as the report reads them: the latest settings only
    expected = chomsky.table(rows, {n: p for n, p in bench.PRESETS.items() if p.study == "chomsky"},
                             bench.CHOMSKY_LEVELS)
    assert block == "\n" + "\n".join(expected) + "\n"


def commands(markdown: str) -> list[str]:
    """The commands in a Markdown file's code blocks: `$ ` lines, and every line of sh blocks."""
    out = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", markdown, re.S):
        for line in body.splitlines():
            if line.startswith("$ "):
                out.append(line[2:].strip())
            elif lang == "sh" and line.strip() and not line.startswith("#"):
                out.append(line.split("  #")[0].strip())
    return out


def test_the_japanese_tour_runs_the_same_commands():
    ja, en = read("README.ja.md"), read("README.md")
    found = commands(ja)
    assert len(found) >= 8, found
    missing = [c for c in found if c not in en]
    assert not missing, missing


def python_files():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout: every file beside the tests
        files = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT) for f in fs
                 if f.endswith(".py") and ".venv" not in d]
    return [f for f in files if not f.startswith(("tests/", "bench/results/"))]


def test_code_holds_no_dates_seeds_or_measured_figures():
    dated = re.compile(r"2026-|seed [0-9]")
    figure = re.compile(r"\d%")  # a percentage in a comment or docstring is a measurement
    bad = []
    for path in python_files():
        src = read(path)
        bad += [f"{path}:{i}" for i, line in enumerate(src.splitlines(), 1) if dated.search(line)]
        notes = [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT]
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
                notes.append((getattr(node, "lineno", 1), ast.get_docstring(node)))
        bad += [f"{path}:{line}" for line, text in notes if figure.search(text)]
    assert not bad, bad


def test_relative_links_in_the_docs_lead_to_files():
    """Every relative Markdown link (README, docs/, bench/results) names a file that exists, read
    from the folder of the file that links it, as GitHub renders it."""
    pages = ["README.md", "README.ja.md", "bench/results/README.md",
             *(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", read(page)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            if not os.path.exists(os.path.join(ROOT, os.path.dirname(page), target.split("#")[0])):
                broken.append(f"{page}: {target}")
    assert not broken, broken
