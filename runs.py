"""The run folder: what train.py writes and evaluate.py / hyper.py read.

    models/<arch>_<task>_<YYYYmmdd_HHMMSS>_<budget>/
        config.json        architecture + model config, data spec, training settings, vocabulary
        model.safetensors  weights (loaded without unpickling anything)
        optimizer.pt       optimizer state for --resume (loaded with weights_only=True)
        metrics.json       test exact match, steps, samples, times, seed, versions, machine load
        curve.csv          the training curve

A folder is written under a hidden temporary name and renamed into place in one step, so an
interrupted write leaves no half-written run; nothing existing is ever overwritten.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata

import torch
from safetensors.torch import load_model, save_model

import archs
from dataset import VOCAB


class RunError(Exception):
    """A problem with a run folder the user can fix; printed as one line."""


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "optuna", "sqlalchemy", "pandas", "rich", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_json(path, obj):
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def new_run_dir(root, arch, task, budget_label) -> str:
    name = f"{arch}_{task}_{time.strftime('%Y%m%d_%H%M%S')}_{budget_label}"
    path, k = os.path.join(root, name), 2
    while os.path.exists(path):
        path, k = os.path.join(root, f"{name}_{k}"), k + 1
    return path


def save_run(path, model, optimizer, config: dict, metrics: dict, curve_csv: str):
    """Write a complete run folder in one atomic rename, at `path` or, if that name was taken
    meanwhile, at `path_2`, `path_3`, ...; returns the folder written. Never replaces a folder."""
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        save_model(model, os.path.join(tmp, "model.safetensors"))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
        write_json(os.path.join(tmp, "config.json"), config)
        write_json(os.path.join(tmp, "metrics.json"), metrics)
        with open(os.path.join(tmp, "curve.csv"), "w") as f:
            f.write(curve_csv)
        final, k = path, 2
        while True:  # another process may have taken the name since new_run_dir chose it
            try:
                os.rename(tmp, final)  # fails rather than replace an existing folder
                return final
            except OSError:
                if not os.path.exists(final) or k > 1000:
                    raise
                final, k = f"{path}_{k}", k + 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path} is missing: not a complete run folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is corrupt ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise RunError(f"{path} is corrupt (not a JSON object)")
    return d


def load_run(path, device="cpu"):
    """(model, config, metrics) of a saved run; RunError with a one-line reason if it is unusable."""
    if not os.path.isdir(path):
        raise RunError(f"no run folder at {path}")
    config = read_json(os.path.join(path, "config.json"))
    metrics = read_json(os.path.join(path, "metrics.json"))
    try:
        arch = archs.resolve(config["arch"])
        if config["vocab"] != VOCAB:
            raise RunError(f"{path} was trained with another vocabulary; it cannot be scored with this version")
        model, _ = archs.build(arch, config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"{path}/config.json is corrupt ({e})") from None
    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        raise RunError(f"{weights} is missing: not a complete run folder")
    try:
        missing, unexpected = load_model(model, weights, strict=False, device=str(device))
    except Exception as e:  # safetensors raises several types for a damaged file
        raise RunError(f"{weights} is corrupt ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    if missing or unexpected:
        raise RunError(f"{weights} does not match its config.json (missing {sorted(missing)[:2]}, unexpected {sorted(unexpected)[:2]})")
    return model.to(device), config, metrics


def load_optimizer_state(path):
    f = os.path.join(path, "optimizer.pt")
    if not os.path.isfile(f):
        return None
    try:
        return torch.load(f, weights_only=True, map_location="cpu")
    except Exception as e:
        raise RunError(f"{f} is corrupt ({type(e).__name__})") from None


def list_runs(root="models") -> list[dict]:
    """Complete runs under root (newest first) with their headline numbers; skips damaged folders."""
    out = []
    if not os.path.isdir(root):
        return out
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        try:
            config = read_json(os.path.join(path, "config.json"))
            metrics = read_json(os.path.join(path, "metrics.json"))
        except RunError:
            continue
        out.append({"run": path, "arch": config.get("arch"), "task": config.get("data", {}).get("task"),
                    "budget": config.get("train", {}).get("budget"), "created": metrics.get("created", ""),
                    "test_em": metrics.get("test_em"), "steps": metrics.get("steps"),
                    "params": metrics.get("params"), "wall_time": metrics.get("wall_time")})
    return sorted(out, key=lambda r: (r["created"], r["run"]), reverse=True)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the full usage stays behind --help)."""

    def error(self, message):
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str, code: int = 2):
    """Print a one-line error and exit: for errors a user can cause."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
