"""serve.py: the JSON API in-process, batching, a real server process, and the page in a real browser."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

import infer
import serve
from conftest import ROOT, assert_one_line_error, run_cli, run_main
from runs import load_run

LOCAL = "http://127.0.0.1"  # the Host a request to serve.py on its default address names


@pytest.fixture(scope="module")
def client(trained_run):
    _, run = trained_run
    app = serve.create_app(load_run(run), "cpu", max_inputs=8)
    with TestClient(app, base_url=LOCAL) as c:  # runs the lifespan: the batching worker
        yield c


def test_predict_health_model_and_page(client, trained_run):
    r = client.post("/predict", json={"inputs": ["(((", "【{", "( ( ("]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["outputs"]) == 3 and body["outputs"][0] == body["outputs"][2], "typed spaces are read away"
    assert all(0 < p <= 1 for p in body["probabilities"]) and body["warnings"] == [[], [], []] and "latex" not in body
    local = infer.ask(load_run(trained_run[1]), ["(((", "【{"])
    assert body["outputs"][:2] == [x["answer"] for x in local], "the same answers as predict.py"
    assert client.get("/health").json() == {"status": "ok"}
    m = client.get("/model").json()
    assert m["arch"] == "gru" and m["task"] == "bracket" and m["budget"] == "3s" and 0 <= m["test_exact_match"] <= 1
    page = client.get("/")
    assert page.status_code == 200 and 'id="problem"' in page.text and "<script>" in page.text
    assert "http" not in page.text.replace("http-equiv", ""), "no external resources: nothing outside the machine"
    r = client.post("/predict", json={"inputs": ["(" * 45]})
    assert r.status_code == 200 and "length 45 is outside" in r.json()["warnings"][0][0]


def test_explain_answers_with_how_the_model_got_there(client, trained_run):
    """POST /explain: the answer predict.py gives and the panels explain.py draws (gru: its hidden
    state over the tokens read); a problem the task cannot take is a 422 with one line."""
    r = client.post("/explain", json={"input": "(([{"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = infer.ask(load_run(trained_run[1]), ["(([{"])[0]
    assert body["answer"] == expected["answer"] and body["tokens"][:6] == ["<bos>", "(", "(", "[", "{", "<sep>"]
    [state] = body["panels"]
    assert state["kind"] == "state" and len(state["values"][0]) == len(state["rows"]) and state["cols"][:2] == ["<bos>", "("]
    for bad, status in (({"input": "())"}, 422), ({"input": 3}, 422), ({"inputs": ["("]}, 422)):
        r = client.post("/explain", json=bad)
        assert r.status_code == status and r.json()["error"], bad


def test_a_scratch_pad_answer_carries_its_work(tmp_path, monkeypatch):
    """A run trained with --format scratch answers in the natural order and shows its partial
    products, as predict --json does; an answer without a scratch pad has none (null)."""
    import dataset as D
    import infer
    from settings import Request
    from training import train
    m = train(Request(arch="gpt", budget="1steps", data=D.DataSpec("arith", {"ops": "+*", "format": "scratch"}, 500, 50, 50, 50),
                          model={"d_model": 16, "n_layer": 1}, models_dir=str(tmp_path / "models"), data_dir=str(tmp_path / "data")),
              quiet=True)
    def answers(model, codec, problems, n, device):  # what a trained model writes: results reversed after the partial products
        return [{"47*21": "74+049=789", "12+3": "51"}[p] for p in problems], [0.9] * len(problems)
    monkeypatch.setattr(infer, "answers", answers)
    with TestClient(serve.create_app(load_run(m["run"]), "cpu", max_inputs=8), base_url=LOCAL) as c:
        body = c.post("/predict", json={"inputs": ["47*21", "12+3"]}).json()
    assert body["outputs"] == ["987", "15"] and body["work"] == ["47 + 940", None]
    assert body["latex"] == ["47 \\times 21 = 987", "12 + 3 = 15"]


@pytest.mark.parametrize("body,status,reason", [
    (b"{not json", 400, "malformed JSON"),
    (b'{"inputs": "((("}', 422, "inputs: Input should be a valid list"),
    (b"{}", 422, "inputs: Field required"),
    (b'{"inputs": []}', 422, "inputs: List should have at least 1 item"),
    (b'{"inputs": [3]}', 422, "inputs.0: Input should be a valid string"),
    (b'{"inputs": ["(((", "12a"]}', 422, "inputs.1: '12a' has symbols this model does not know"),
    (b'{"inputs": ["(]"]}', 422, "inputs.0: '(]' closes wrongly"),
    (json.dumps({"inputs": ["(" * 500]}).encode(), 422, "inputs.0: String should have at most 240 characters"),
    (json.dumps({"inputs": ["("] * 9}).encode(), 422, "(at most 8 inputs)"),
    (b'{"inputs": ["("], "extra": 1}', 422, "extra: Extra inputs are not permitted"),
    (b'[1, 2]', 422, "body: Input should be a valid dictionary"),
    (b"\xff\xfe", 400, "malformed JSON"),
    (json.dumps({"inputs": ["(" * 240] * 8}).encode() + b" " * 30_000, 413, "request body over"),
    (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deep"),
    (b'{"inputs": [' + b"9" * 4301 + b"]}", 400, "malformed JSON"),
])
def test_bad_requests_are_4xx_with_one_line(client, body, status, reason):
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert reason in error and "\n" not in error, error


def test_json_is_read_whatever_the_content_type(client):
    r = client.post("/predict", content=b'{"inputs": ["((("]}', headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and len(r.json()["outputs"]) == 1


def test_wrong_method_and_path_are_4xx(client):
    r = client.get("/predict")
    assert r.status_code == 405 and "error" in r.json() and r.headers["allow"] == "POST"
    assert client.get("/nope").status_code == 404


def test_the_byte_limit_admits_every_request_the_other_limits_admit(client):
    """The most inputs, each of the most characters, as json.dumps escapes them (6 bytes a
    character of U+3010, 12 of a character beyond the BMP): answered, not 413."""
    for char in ("【", "\U0001F600"):
        body = json.dumps({"inputs": [char * 240] * 8}).encode()
        r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code in (200, 422) and "over" not in r.text, (char, r.text[:200])


def test_security_headers_host_check_and_schema(client, trained_run):
    """Every response (answers, errors, the page) carries the security headers; the page's script
    runs under its hash; a Host other than a loopback name is refused (DNS rebinding) unless the
    server was started on another address; the OpenAPI schema describes both request bodies."""
    for r in (client.get("/"), client.get("/nope"), client.post("/predict", json={"inputs": ["(("]}), client.get("/health")):
        assert r.headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"
    page = client.get("/").text
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    import base64
    import hashlib
    assert f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'" in \
        client.get("/").headers["content-security-policy"]
    for host, status in (("127.0.0.1:8000", 200), ("localhost", 200), ("[::1]:8000", 200), ("evil.example", 421),
                         ("127.0.0.1.evil.example:8000", 421)):
        r = client.get("/health", headers={"Host": host})
        assert r.status_code == status, host
    assert "evil.example" in client.get("/health", headers={"Host": "evil.example"}).json()["error"]
    with TestClient(serve.create_app(load_run(trained_run[1]), "cpu", host="0.0.0.0"), base_url="http://box.lan") as anywhere:
        assert anywhere.get("/health").status_code == 200
    schema = client.get("/openapi.json").json()
    for path, field in (("/predict", "inputs"), ("/explain", "input")):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert field in body["properties"] and body["required"] == [field], body
    inputs = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]
    assert inputs["maxItems"] == 8


def test_concurrent_requests_share_a_forward_pass(trained_run, monkeypatch):
    run = load_run(trained_run[1])
    calls = []
    real_ask = infer.ask
    monkeypatch.setattr(infer, "ask", lambda r, texts, device: calls.append(len(texts)) or real_ask(r, texts, device))
    inputs = ["(" * k for k in range(1, 11)]

    async def scenario():
        batcher = serve.Batcher(run, "cpu", 256)
        worker = asyncio.create_task(batcher.work())
        results = await asyncio.gather(*(batcher.ask([x]) for x in inputs))
        worker.cancel()
        return results

    results = asyncio.run(scenario())
    assert sum(calls) == 10 and len(calls) < 10, calls
    assert [r[0]["answer"] for r in results] == [r["answer"] for r in real_ask(run, inputs, "cpu")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cwd, run, port, *args):
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "serve.py"), str(run), "--port", str(port), *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    end = time.time() + 60
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None:
                raise AssertionError(f"serve.py exited: {proc.stderr.read()}") from None
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("serve.py did not answer /health within 60 s")


@pytest.fixture
def server(trained_run):
    cwd, run = trained_run
    port = free_port()
    proc = start_server(cwd, run, port)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_server_answers_and_stops_on_sigterm(server, trained_run):
    proc, port = server
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps({"inputs": ["((("]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert len(json.load(r)["outputs"]) == 1
    assert proc.stdout.readline().startswith(f"serving {trained_run[1]} (gru, bracket) on cpu at http://127.0.0.1:{port}/")
    with pytest.raises(urllib.error.HTTPError) as e:  # a bad request over the wire: 4xx, one line
        urllib.request.urlopen(urllib.request.Request(req.full_url, data=b"{", headers=req.headers), timeout=10)
    assert e.value.code == 400 and json.load(e.value)["error"].startswith("malformed JSON")
    p, _ = run_cli("serve.py", str(trained_run[1]), "--port", str(port), cwd=trained_run[0])  # the port is taken
    assert_one_line_error(p)
    assert f"cannot listen on 127.0.0.1:{port}" in p.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "nothing listens after SIGTERM"


def test_slow_and_vanishing_clients(trained_run):
    """--read-timeout: a connection that never finishes its headers is closed, a body that never
    comes is a 408; a client that disconnects mid-body is one log line, no traceback."""
    cwd, run = trained_run
    port = free_port()
    proc = start_server(cwd, run, port, "--read-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            assert s.recv(1000) == b"", "closed"
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
            assert s.recv(1000).startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert r.status == 200, "still serving"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    err = proc.stderr.read()
    assert "Traceback" not in err and err.count("disconnected before its request was read") == 1, err


def test_serve_errors(trained_run, tmp_path):
    cwd, run = trained_run
    p, _ = run_cli("serve.py", "models/missing", cwd=cwd)  # the script itself
    assert_one_line_error(p)
    for args in ([str(run), "--port", "70000"], [str(run), "--device", "cuda:9"]):
        p = run_main("serve.py", *args, cwd=cwd)
        assert_one_line_error(p)
    p = run_main("serve.py", cwd=tmp_path)
    assert_one_line_error(p)


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def test_the_page_in_a_real_browser(server, trained_run):
    """Type a problem into the page in headless Chromium, press the button, read the answer."""
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; .ci/run installs them")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, port = server
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "problem").send_keys("((【")
        driver.find_element(By.ID, "ask").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "probability").text)
        shown = driver.find_element(By.ID, "answer").text
        probability = driver.find_element(By.ID, "probability").text
        error = driver.find_element(By.ID, "error").text
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "inside-0"))  # the map of how it answered
        canvas = driver.find_element(By.ID, "inside-0")
        drawn = driver.execute_script("const c = arguments[0]; return Array.from(c.getContext('2d').getImageData(0, 0, c.width, "
                                      "c.height).data).some((v, i) => i % 4 !== 3 && v > 0)", canvas)
        inside = driver.find_element(By.ID, "inside").text
    finally:
        driver.quit()
    expected = infer.ask(load_run(trained_run[1]), ["((【"])[0]
    assert error == "" and shown == (expected["answer"] or "(nothing)")
    assert probability == f"({100 * expected['probability']:.2f}%)"
    assert drawn and "hidden state" in inside and "<sep>" in inside, inside
