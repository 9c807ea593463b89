"""Load benchmark of serve.py: concurrent clients on 127.0.0.1, each making a bounded number of
single-problem requests over one keep-alive connection.

    python -m bench.load models/<run>                    # 10 clients x 500 requests
    python -m bench.load models/<run> --clients 10 --requests 500 --commit

It starts serve.py as its own process (as a user would), waits for /health, records the server's
resident memory, fires the requests, records the memory again, and reports requests per second,
latency percentiles and errors (any non-200 answer or broken connection). The clients are raw
asyncio HTTP/1.1 connections: a light load generator, so most of the machine serves. Results are
appended to bench/results/serve_load.csv.
"""
import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd

from bench.common import RESULTS as RESULTS_DIR
from bench.common import add_commit_arg, append_rows, git_commit
from cli import fail
from errors import UserError
from files import check_writable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where serve.py is
RESULTS = os.path.join(RESULTS_DIR, "serve_load.csv")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(port: int, problems: list[str], latencies: list[float], errors: list[str]):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for problem in problems:
            body = json.dumps({"inputs": [problem]}).encode()
            head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            t = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status = (await reader.readline()).split()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            if len(status) < 2 or status[1] != b"200":
                errors.append(b" ".join(status).decode(errors="replace"))
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        errors.append(type(e).__name__)
    finally:
        writer.close()


async def load(port, clients, per_client, problems):
    latencies, errors = [], []
    rng = random.Random(0)
    work = [[rng.choice(problems) for _ in range(per_client)] for _ in range(clients)]
    t = time.perf_counter()
    await asyncio.gather(*(client(port, w, latencies, errors) for w in work))
    return time.perf_counter() - t, latencies, errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a run folder")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--requests", type=int, default=500, help="requests per client (default 500)")
    add_commit_arg(p)
    a = p.parse_args(argv)
    import torch

    from runs import load_run
    try:
        check_writable(RESULTS_DIR)  # before measuring: a row that cannot be kept is not computed
        run = load_run(a.run)
    except UserError as e:
        fail(str(e))
    problems = [e.input for e in run.task.sample(torch.Generator().manual_seed(1), 200)]
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "serve.py"), a.run, "--port", str(port), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"serve.py exited: {server.stderr.read()}")
                time.sleep(0.2)
        asyncio.run(load(port, a.clients, 20, problems))  # warm-up: first requests pay for lazy set-up
        before = rss_mb(server.pid)
        load1 = os.getloadavg()[0]
        seconds, lat, errors = asyncio.run(load(port, a.clients, a.requests, problems))
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = pd.Series(lat) * 1000
    row = {"date": time.strftime("%Y-%m-%d %H:%M"), "run": os.path.basename(a.run.rstrip("/")), "arch": run.config["arch"],
           "task": run.task.name, "clients": a.clients, "requests": len(lat), "errors": len(errors),
           "requests_per_s": round(len(lat) / seconds, 1), "p50_ms": round(lat.quantile(0.5), 2),
           "p99_ms": round(lat.quantile(0.99), 2), "max_ms": round(lat.max(), 2), "rss_mb_before": round(before, 1),
           "rss_mb_after": round(after, 1), "load_before": round(load1, 2), "cpu_count": os.cpu_count()}
    print(json.dumps(row))
    if errors:
        print(f"errors: {sorted(set(errors))[:5]}", file=sys.stderr)
    append_rows(RESULTS, [row])
    if a.commit:
        git_commit(RESULTS, f"bench.load: {row['arch']} {row['task']}: {row['requests_per_s']} req/s, "
                            f"p99 {row['p99_ms']} ms, {row['errors']} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
