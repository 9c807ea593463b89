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
never a 500: malformed JSON, nested too deep or with a number of over 4300 digits (400), a body
too large (413) or too slow (408), a missing or non-list `inputs`, a non-string, more than
--max-inputs inputs, an input longer than --max-input-len, symbols the codec lacks or a problem the
task cannot take (422). The body is read as JSON whatever its content type; its byte limit admits
every request those limits admit, however json.dumps escapes it. The OpenAPI schema (/openapi.json)
describes both request bodies. A client has --read-timeout seconds to send a request's headers and
as many for its body; one that disconnects mid-request is one log line. Every response carries a
Content-Security-Policy (the page's one inline script by its hash, nothing from elsewhere, no
framing), X-Content-Type-Options and Referrer-Policy. Bound to a loopback address (the default
127.0.0.1), requests must name a loopback host (Host: 127.0.0.1, localhost or [::1]), so a web page
elsewhere cannot reach it through DNS rebinding; with --host ADDRESS that address is accepted too,
and with 0.0.0.0 or :: (Docker) any. Requests that arrive while the model is busy are answered
together in one forward pass. Ctrl-C or SIGTERM stops it.
"""
import os
import signal
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import asyncio
import base64
import contextlib
import hashlib
import html
import json
import re
import socket
from typing import Annotated

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
READ_TIMEOUT = 10.0  # seconds a client has for a request's headers, and as many for its body (--read-timeout)


def allowed_hosts(host: str) -> set | None:
    """The Host header names a request may give: the loopback names, and the address served on
    when it is another; None (any) when serving on every address (0.0.0.0, ::)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK | {host.lower()}


def host_of(header: str) -> str:
    """The host of a Host header without its port: `127.0.0.1:8000` -> 127.0.0.1, `[::1]:80` -> ::1."""
    m = re.fullmatch(r"\[([^\]]*)\](:\d+)?|([^:]*)(:\d+)?", header.strip().lower())
    return (m.group(1) or m.group(3) or "") if m else ""


class TimedHttp(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for a request's headers: a connection that has not
    sent a whole request head READ_TIMEOUT (--read-timeout) seconds after it opened, or after its
    previous response, is closed (uvicorn waits for them forever: a slow client holds a connection)."""
    read_timeout = READ_TIMEOUT

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm()

    def _arm(self):
        self._head_timer = self.loop.call_later(self.read_timeout, self._too_slow)

    def _too_slow(self):
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self):
        self._head_timer.cancel()
        super().on_headers_complete()

    def on_response_complete(self):
        super().on_response_complete()
        if not self.transport.is_closing():
            self._head_timer.cancel()
            self._arm()

    def connection_lost(self, exc):
        self._head_timer.cancel()
        super().connection_lost(exc)


def create_app(run, device="cpu", max_inputs: int = 256, max_input_len: int | None = None, runtime="torch",
               host: str = "127.0.0.1", read_timeout: float = READ_TIMEOUT) -> FastAPI:
    max_len = max_input_len or 4 * run.task.max_input_len()
    # json.dumps writes a character as at most 12 bytes (a surrogate pair of \uXXXX escapes), and an
    # input's quotes, comma and space in 16: every request within the count and length limits fits
    max_body = 1024 + max_inputs * (12 * max_len + 16)
    batcher = Batcher(run, device, max(max_inputs, 64))
    hosts = allowed_hosts(host)

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
    page_html = render_page(run)
    script = page_html.split("<script>", 1)[1].split("</script>", 1)[0]
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    headers = {"Content-Security-Policy": f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; "
                                          "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; "
                                          "frame-ancestors 'none'",
               "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """The Host check (DNS rebinding), then the security headers on every response."""
        if hosts is not None and host_of(request.headers.get("host", "")) not in hosts:
            response = error(421, f"this server answers requests for {', '.join(sorted(hosts))}, not "
                                  f"{request.headers.get('host', '(no Host header)')[:100]!r}")
        else:
            response = await call_next(request)
        response.headers.update(headers)
        return response

    async def read_body(request: Request) -> bytes | JSONResponse:
        """The body, at most max_body bytes and within read_timeout seconds; else the 4xx to answer."""
        raw = b""
        try:
            async with asyncio.timeout(read_timeout):
                async for chunk in request.stream():
                    raw += chunk
                    if len(raw) > max_body:
                        return error(413, f"request body over {max_body} bytes (at most {max_inputs} inputs of {max_len} characters)")
        except TimeoutError:
            return error(408, f"request body not received within {read_timeout:g} s")
        except ClientDisconnect:
            log(f"{request.client.host if request.client else 'a client'} disconnected before its request was read")
            return error(400, "client disconnected")
        return raw

    def invalid(e: ValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "body"
        limit = f" (at most {max_inputs} inputs)" if first.get("type") == "too_long" and where == "inputs" else ""
        return error(422, f"{where}: {first.get('msg')}{limit}")

    async def read_request(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
        """The request body as model, or the 4xx to answer (read_body's, or of its JSON)."""
        raw = await read_body(request)
        if isinstance(raw, JSONResponse):
            return raw
        try:
            return model.model_validate(json.loads(raw))
        except RecursionError:
            return error(400, "malformed JSON: nested too deep")
        except ValidationError as e:
            return invalid(e)
        except ValueError as e:  # bad JSON or UTF-8, a number of over 4300 digits
            return error(400, f"malformed JSON: {str(e).splitlines()[0][:200]}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))  # 405's Allow

    def described(model: type[BaseModel]) -> dict:
        """What the OpenAPI schema says of a body read by hand (read_body): model's JSON schema."""
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}

    one_line = {"content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}},
                                                              "required": ["error"]}}}}
    refusals = {400: {"description": "malformed JSON, or the client went away", **one_line},
                408: {"description": "the body did not come within --read-timeout", **one_line},
                413: {"description": "a body over the byte limit", **one_line},
                421: {"description": "a Host that is not this server's", **one_line},
                422: {"description": "a request the limits or the task refuse", **one_line}}

    @app.post("/predict", openapi_extra=described(PredictRequest), responses=refusals)
    async def answer(request: Request):
        """The body is read as JSON whatever its declared content type (curl -d sends a form type)."""
        body = await read_request(request, PredictRequest)
        if isinstance(body, JSONResponse):
            return body
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

    @app.post("/explain", openapi_extra=described(ExplainRequest), responses=refusals)
    async def explain(request: Request):
        """One problem's answer and how the model got there (inspection.as_json); the body is read
        as JSON whatever its declared content type, at most a request's worth of bytes."""
        body = await read_request(request, ExplainRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            async with batcher.model_lock:
                result = await asyncio.to_thread(inspection.inspect, run, body.input, device)
        except UserError as e:
            return error(422, str(e))
        return inspection.as_json(result)

    @app.get("/health", responses={421: refusals[421]})
    async def health():
        return {"status": "ok"}

    @app.get("/model", responses={421: refusals[421]})
    async def model():
        m, c = run.metrics, run.config
        return {"run": run.path, "arch": c["arch"], "task": run.task.name, "options": run.task.cfg.__dict__,
                "budget": c.get("train", {}).get("budget"), "test_exact_match": m.get("test_em"),
                "steps": m.get("steps"), "parameters": m.get("params"), "runtime": runtime, "symbols": run.codec.symbols,
                "max_inputs": max_inputs, "max_input_len": max_len, "extras": run.task.extras}

    @app.get("/", response_class=HTMLResponse, responses={421: refusals[421]})
    async def page():
        return page_html

    return app


def log(line: str):
    print(line, file=sys.stderr, flush=True)


def render_page(run) -> str:
    """The page, made once when the app is (its script's hash is in the Content-Security-Policy)."""
    example = run.task.sample(torch.Generator().manual_seed(0), 1)[0].input
    title = f"{run.config['arch']} on {run.task.name}: {os.path.basename(run.path)}"
    extras = json.dumps(run.task.extras).replace("<", "\\u003c")  # inside <script>: no tag can close it
    return PAGE.replace("{{title}}", html.escape(title)).replace("{{example}}", html.escape(example)).replace("{{extras}}", extras)


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
    p.add_argument("--read-timeout", type=float, default=READ_TIMEOUT,
                   help=f"seconds a client has to send a request's headers, and as many for its body (default {READ_TIMEOUT:g})")
    add_device_args(p)
    add_runtime_argument(p)
    a = p.parse_args(argv)
    try:
        if not 0 < a.port < 65536:
            raise SettingsError(f"port {a.port} is not between 1 and 65535")
        if a.max_inputs < 1 or (a.max_input_len is not None and a.max_input_len < 1):
            raise SettingsError("--max-inputs and --max-input-len must be at least 1")
        if not 0 < a.read_timeout <= 3600:
            raise SettingsError(f"--read-timeout is seconds, more than 0 and at most 3600, got {a.read_timeout:g}")
        device = use_device(a)
        run = load_run(pick_run(a.run, a.latest, a.models_dir, "serve"), device, a.runtime)
        if (reason := port_free(a.host, a.port)) is not None:
            raise SettingsError(f"cannot listen on {a.host}:{a.port} ({reason}); choose another with --port or --host")
    except UserError as e:
        fail(str(e))
    app = create_app(run, device, a.max_inputs, a.max_input_len, a.runtime, a.host, a.read_timeout)
    TimedHttp.read_timeout = a.read_timeout
    print(f"serving {run.path} ({run.config['arch']}, {run.task.name}) on {device} at http://{a.host}:{a.port}/ "
          "(Ctrl-C or SIGTERM stops it)", flush=True)
    def stopped(*_):
        print("stopped", flush=True)
        sys.exit(0)

    # uvicorn shuts down gracefully on SIGTERM and Ctrl-C, then raises the signal again: end quietly
    signal.signal(signal.SIGTERM, stopped)
    try:
        uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False, http=TimedHttp)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
