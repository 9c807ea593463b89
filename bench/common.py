"""What the bench scripts share: where results live, appending rows, and --commit."""
import os
import subprocess

import pandas as pd

RESULTS = os.path.join("bench", "results")  # relative to where a bench runs: the repository root


def add_commit_arg(p):
    p.add_argument("--commit", action="store_true",
                   help="git-commit the results after each run (a session can end at any time)")


def append_rows(path: str, rows: list[dict]):
    """Append rows to a CSV file (made with a header when missing), columns aligned by name."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    new = pd.DataFrame(rows)
    if os.path.isfile(path):
        new = pd.concat([pd.read_csv(path), new], ignore_index=True)
    tmp = f"{path}.tmp"
    new.to_csv(tmp, index=False)
    os.replace(tmp, path)


def git_commit(paths, message: str):
    """Commit paths (files or folders) with message; outside a git repository, nothing."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    subprocess.run(["git", "add", *paths], check=False, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], check=False, capture_output=True)
