"""Serve a trained run over HTTP: a JSON API and a page to try it in a browser.

    python serve.py models/<run>                      # http://127.0.0.1:8000 (or --latest)
    python serve.py models/<run> --host 0.0.0.0 --port 8000   # reachable from elsewhere (Docker)

    POST /predict  {"inputs": ["12*3", "7/2"]}
                -> {"outputs": ["36", "3.5"], "probabilities": [0.998, 0.97], "warnings": [[], []],
                    "latex": ["12 \\\\times 3 = 36", "\\\\frac{7}{2} = 3.5"]}
                and one list per extra of the run's task (tasks/: arith's latex, and for a run trained
                with --format scratch its partial products, "work": "47 + 940" for 47*21), null
                for an answer without it
    POST /explain  {"input": "12*3"} -> the answer, each token's probability and how the model got there
                (inspection.inspect: attention weights of every layer and head, or the recurrent state),
                which the page draws beside the answer; 422 for a run or runtime without explain
    GET /health    {"status": "ok"}
    GET /model     architecture, task and options, training budget, test exact match, parameters
    GET /          a page to type a problem and see the answer and its probability

Inputs are read and answered exactly as predict.py does (infer.ask: the task's normalisation,
the run's codec, greedy decoding). A bad request gets a 4xx status and {"error": "<one line>"},
never a 500: malformed JSON (400), a body too large (413), a missing or non-list `inputs`, a
non-string, more than --max-inputs inputs, an input longer than --max-input-len, symbols the codec
lacks or a problem the task cannot take (422). The body is read as JSON whatever its content type.
Requests that arrive while the model is busy are answered together in one forward pass. Binds
127.0.0.1 unless --host says otherwise; Ctrl-C or SIGTERM stops it.
"""
import os
import signal
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import asyncio
import contextlib
import html
import json
import socket
from typing import Annotated

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints, ValidationError
from starlette.exceptions import HTTPException

import infer
import inspection
from cli import Parser, add_device_args, add_run_args, fail, pick_run, use_device
from errors import SettingsError, UserError
from onnxrun import add_runtime_argument
from runs import load_run


class Batcher:
    """Answers the problems of concurrent requests together: whenever the model is free it takes
    everything queued (up to max_batch problems) and answers it in one infer.ask call."""

    def __init__(self, run, device, max_batch: int):
        self.run, self.device, self.max_batch = run, device, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.model_lock = asyncio.Lock()  # one use of the model at a time: an explanation records its attention

    async def ask(self, texts: list[str]) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def work(self):
        while True:
            jobs = [await self.queue.get()]
            while not self.queue.empty() and sum(len(t) for t, _ in jobs) < self.max_batch:
                jobs.append(self.queue.get_nowait())
            texts = [t for ts, _ in jobs for t in ts]
            try:
                async with self.model_lock:
                    results = await asyncio.to_thread(infer.ask, self.run, texts, self.device)
            except Exception as e:  # not expected; never leave a request waiting
                for _, future in jobs:
                    future.set_exception(e)
                continue
            start = 0
            for ts, future in jobs:
                future.set_result(results[start: start + len(ts)])
                start += len(ts)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(run, device="cpu", max_inputs: int = 256, max_input_len: int | None = None, runtime="torch") -> FastAPI:
    max_len = max_input_len or 4 * run.task.max_input_len()
    max_body = 1024 + max_inputs * (4 * max_len + 16)  # UTF-8 takes at most 4 bytes a character
    batcher = Batcher(run, device, max(max_inputs, 64))

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inputs: list[Annotated[StrictStr, StringConstraints(max_length=max_len)]] = Field(min_length=1, max_length=max_inputs)

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        input: Annotated[StrictStr, StringConstraints(max_length=max_len)]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        worker = asyncio.create_task(batcher.work())
        yield
        worker.cancel()

    app = FastAPI(title="bracket and arithmetic harness", lifespan=lifespan, docs_url=None, redoc_url=None)

    def invalid(e: ValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "body"
        limit = f" (at most {max_inputs} inputs)" if first.get("type") == "too_long" and where == "inputs" else ""
        return error(422, f"{where}: {first.get('msg')}{limit}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.post("/predict")
    async def answer(request: Request):
        """The body is read as JSON whatever its declared content type (curl -d sends a form type)."""
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body:
                return error(413, f"request body over {max_body} bytes (at most {max_inputs} inputs of {max_len} characters)")
        try:
            body = PredictRequest.model_validate(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"malformed JSON: {str(e).splitlines()[0]}")
        except ValidationError as e:
            return invalid(e)
        results = await batcher.ask(body.inputs)
        bad = next((i for i, r in enumerate(results) if "error" in r), None)
        if bad is not None:
            return error(422, f"inputs.{bad}: {results[bad]['error']}")
        out = {"outputs": [r["answer"] for r in results], "probabilities": [r["probability"] for r in results],
               "warnings": [r["warnings"] for r in results]}
        for key in run.task.extras:  # null for an answer without it (a sum has no partial products)
            if any(key in r for r in results):
                out[key] = [r.get(key) for r in results]
        return out

    @app.post("/explain")
    async def explain(request: Request):
        """One problem's answer and how the model got there (inspection.as_json); the body is read
        as JSON whatever its declared content type, at most a request's worth of bytes."""
        raw = await request.body()
        if len(raw) > max_body:
            return error(413, f"request body over {max_body} bytes")
        try:
            body = ExplainRequest.model_validate(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"malformed JSON: {str(e).splitlines()[0]}")
        except ValidationError as e:
            return invalid(e)
        try:
            async with batcher.model_lock:
                result = await asyncio.to_thread(inspection.inspect, run, body.input, device)
        except UserError as e:
            return error(422, str(e))
        return inspection.as_json(result)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/model")
    async def model():
        m, c = run.metrics, run.config
        return {"run": run.path, "arch": c["arch"], "task": run.task.name, "options": run.task.cfg.__dict__,
                "budget": c.get("train", {}).get("budget"), "test_exact_match": m.get("test_em"),
                "steps": m.get("steps"), "parameters": m.get("params"), "runtime": runtime, "symbols": run.codec.symbols,
                "max_inputs": max_inputs, "max_input_len": max_len, "extras": run.task.extras}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        example = run.task.sample(torch.Generator().manual_seed(0), 1)[0].input
        title = f"{run.config['arch']} on {run.task.name}: {os.path.basename(run.path)}"
        extras = json.dumps(run.task.extras).replace("<", "\\u003c")  # inside <script>: no tag can close it
        return PAGE.replace("{{title}}", html.escape(title)).replace("{{example}}", html.escape(example)).replace("{{extras}}", extras)

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 16px/1.5 system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; }
 input { font: inherit; padding: .3em; width: 16em; } button { font: inherit; padding: .3em 1em; }
 #answer { font-size: 1.6em; font-weight: bold; } .warn { color: #a60; } #error { color: #b00; }
</style></head>
<body>
<h1>{{title}}</h1>
<form id="form"><input id="problem" placeholder="{{example}}" autofocus autocomplete="off">
<button id="ask" type="submit">Answer</button></form>
<p><span id="answer"></span> <span id="probability"></span></p>
<div id="extras"></div><ul id="warnings" class="warn"></ul><p id="error"></p>
<div id="inside"></div>
<script>
const $ = (id) => document.getElementById(id);
const EXTRAS = {{extras}};  // what the task shows beside an answer: key -> label
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  for (const id of ["answer", "probability", "extras", "warnings", "error", "inside"]) $(id).textContent = "";
  const problem = $("problem").value || $("problem").placeholder;
  try {
    const response = await fetch("/predict", {method: "POST", headers: {"Content-Type": "application/json"},
                                              body: JSON.stringify({inputs: [problem]})});
    const body = await response.json();
    if (!response.ok) { $("error").textContent = body.error; return; }
    $("answer").textContent = body.outputs[0] === "" ? "(nothing)" : body.outputs[0];
    $("probability").textContent = "(" + (100 * body.probabilities[0]).toFixed(2) + "%)";
    for (const [key, label] of Object.entries(EXTRAS)) {
      if (body[key] && body[key][0] !== null) {
        const p = document.createElement("p"); p.id = key; p.textContent = label + ": " + body[key][0]; $("extras").append(p);
      }
    }
    for (const w of body.warnings[0]) { const li = document.createElement("li"); li.textContent = w; $("warnings").append(li); }
    const inside = await fetch("/explain", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify({input: problem})});
    if (inside.ok) draw((await inside.json()).panels);
  } catch (e) { $("error").textContent = "no answer from the server: " + e; }
});

// Each panel of how the model answered (attention averaged over its heads, or a state), as a map:
// rows are queries (or units), columns the tokens read; brighter is more weight.
function draw(panels) {
  panels.forEach((p, n) => {
    const rows = p.values[0].length, cols = p.values[0][0].length, cell = Math.max(2, Math.min(24, Math.floor(480 / cols)));
    const mean = p.values[0].map((row, r) => row.map((_, c) => p.values.reduce((s, h) => s + (h[r][c] ?? 0), 0) / p.values.length));
    const lo = Math.min(...mean.flat()), hi = Math.max(...mean.flat());
    const figure = document.createElement("figure"), caption = document.createElement("figcaption");
    const canvas = document.createElement("canvas");
    canvas.id = "inside-" + n; canvas.width = cols * cell; canvas.height = rows * Math.max(2, Math.min(cell, Math.floor(360 / rows)));
    const ctx = canvas.getContext("2d"), h = canvas.height / rows;
    mean.forEach((row, r) => row.forEach((v, c) => {
      const t = hi > lo ? (v - lo) / (hi - lo) : 0;
      ctx.fillStyle = `rgb(${Math.round(255 * t)}, ${Math.round(200 * t)}, ${Math.round(80 + 120 * (1 - t))})`;
      ctx.fillRect(c * cell, r * h, cell, h);
    }));
    caption.textContent = p.name + (p.values.length > 1 ? ` (mean of ${p.values.length} heads)` : "") + ": " + p.cols.join(" ");
    figure.append(canvas, caption);
    $("inside").append(figure);
  });
}
</script>
</body></html>
"""


def port_free(host: str, port: int) -> str | None:
    """None if host:port can be bound, else the reason."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        return e.strerror or str(e)
    return None


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    add_run_args(p, "serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-inputs", type=int, default=256, help="most problems in one request (default 256)")
    p.add_argument("--max-input-len", type=int, help="longest problem in characters (default: 4x the task's longest)")
    add_device_args(p)
    add_runtime_argument(p)
    a = p.parse_args(argv)
    try:
        if not 0 < a.port < 65536:
            raise SettingsError(f"port {a.port} is not between 1 and 65535")
        if a.max_inputs < 1 or (a.max_input_len is not None and a.max_input_len < 1):
            raise SettingsError("--max-inputs and --max-input-len must be at least 1")
        device = use_device(a)
        run = load_run(pick_run(a.run, a.latest, a.models_dir, "serve"), device, a.runtime)
        if (reason := port_free(a.host, a.port)) is not None:
            raise SettingsError(f"cannot listen on {a.host}:{a.port} ({reason}); choose another with --port or --host")
    except UserError as e:
        fail(str(e))
    app = create_app(run, device, a.max_inputs, a.max_input_len, a.runtime)
    print(f"serving {run.path} ({run.config['arch']}, {run.task.name}) on {device} at http://{a.host}:{a.port}/ "
          "(Ctrl-C or SIGTERM stops it)", flush=True)
    def stopped(*_):
        print("stopped", flush=True)
        sys.exit(0)

    # uvicorn shuts down gracefully on SIGTERM and Ctrl-C, then raises the signal again: end quietly
    signal.signal(signal.SIGTERM, stopped)
    try:
        uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
