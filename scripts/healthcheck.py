"""The image's HEALTHCHECK: a container whose main process is serve.py is healthy while serve.py
answers GET /health on the port it was given (--port, default 8000); any other container (a
training run, a study) has no health to report and is healthy. Standard library only: it runs
every 30 s and must cost nothing."""
import sys
import urllib.request


def serve_address(argv: list[str]) -> tuple[str, int] | None:
    """(host, port) that serve.py listens on, read from its command line; None if it is not serve.py."""
    if not any(a.endswith("serve.py") for a in argv):
        return None
    options, key = {}, None
    for a in argv:
        if key:
            options[key], key = a, None
        elif a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            options[k] = v
        elif a in ("--host", "--port"):
            key = a
    host = options.get("--host", "127.0.0.1")
    return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), int(options.get("--port", 8000))


def main() -> int:
    with open("/proc/1/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace").split("\0")
    address = serve_address(argv)
    if address is None:
        return 0
    host, port = address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=4) as r:
            return 0 if r.status == 200 else 1
    except OSError as e:
        print(f"serve.py does not answer on {host}:{port}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
