"""The Docker image, built and run for real: the README's Docker commands (with tiny budgets), in
containers, against a real daemon. Skipped only where no Docker daemon answers, and never in CI
(CI=true), where .ci/run starts one (../shared/docker/docker-env.sh) and exports DOCKER_HOST and
DOCKER_BUILD_ARGS (how to reach a wheelhouse instead of the package indexes)."""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, SMALL

TAG = "harness-test"  # not the README's `harness`: a user's own image is left alone
TINY = [*SMALL, "--seed", "0"]


def docker(*args, timeout=300, check=True, input=None) -> subprocess.CompletedProcess:
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=input,
                       stdin=subprocess.DEVNULL if input is None else None)
    if check:
        assert p.returncode == 0, f"docker {' '.join(args)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def daemon_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


if not daemon_answers():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs a Docker daemon for tests/test_docker.py: .ci/run starts one "
                           "(../shared/docker/docker-env.sh start requirements.txt)")
    pytest.skip("no Docker daemon answers (docker version)", allow_module_level=True)


def readme_commands() -> list[str]:
    """The docker commands of the README's Docker section, in order."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## Docker"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("docker ")]


def readme_command(script: str) -> str:
    """The README's command that runs script (`build` for the image)."""
    found = [c for c in readme_commands() if (c.startswith("docker build") if script == "build" else f"python {script}" in c)]
    assert len(found) == 1, f"the README's Docker section should have one command for {script}: {readme_commands()}"
    return found[0]


def adapt(command: str, work, volume: str, extra=(), run_options=()) -> list[str]:
    """A README command as the test runs it: the test's folder for $PWD, its user, image tag and
    data volume, no terminal (-it), run_options after `docker run`, extra arguments at the end."""
    command = (command.replace('"$PWD', f'"{work}').replace('"$(id -u):$(id -g)"', f"{os.getuid()}:{os.getgid()}")
               .replace("harness-data:", f"{volume}:"))
    args = [TAG if a == "harness" else a for a in shlex.split(command) if a != "-it"]
    assert args[:2] == ["docker", "run"], command
    return [*args[1:2], *run_options, *args[2:], *extra]


@pytest.fixture(scope="module")
def image():
    """The image, built as the README builds it, with the daemon's build arguments (CI: the wheelhouse)."""
    args = shlex.split(readme_command("build"))
    assert args[:2] == ["docker", "build"] and args[-1] == "."
    build = [*shlex.split(os.environ.get("DOCKER_BUILD_ARGS", "")), *[TAG if a == "harness" else a for a in args[2:-1]], ROOT]
    t = time.time()
    p = docker("build", *build, timeout=1200)
    print(f"built {TAG} in {time.time() - t:.0f}s")
    assert "Successfully" in p.stdout or p.returncode == 0
    return TAG


@pytest.fixture(scope="module")
def work(tmp_path_factory, image):
    """The README's working folder: models/ and optuna_studies/ made by the user before docker run
    (made world-writable where the test runs as root, so that any uid in a container writes it),
    and a data volume of the test's own, removed afterwards."""
    work = tmp_path_factory.mktemp("docker")
    for name in ("models", "optuna_studies"):
        (work / name).mkdir()
    volume = f"harness-test-data-{os.getpid()}"
    yield work, volume
    docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="module")
def trained(work):
    """gru trained for 3 seconds by the README's train command, into the mounted models/."""
    folder, volume = work
    p = docker(*adapt(readme_command("train.py").replace(" 1min", " 3s"), folder, volume, TINY), timeout=300)
    runs = os.listdir(folder / "models")
    assert len(runs) == 1 and runs[0].startswith("gru_bracket_"), (runs, p.stderr)
    run = folder / "models" / runs[0]
    assert {"model.safetensors", "config.json", "metrics.json"} <= set(os.listdir(run))
    assert os.stat(run).st_uid == os.getuid(), "the run belongs to the user who ran docker (--user)"
    return run


def test_readme_train_then_evaluate_in_containers(work, trained):
    folder, volume = work
    p = docker(*adapt(readme_command("evaluate.py"), folder, volume), timeout=300)
    assert "test" in p.stdout and "exact match" in p.stdout, p.stdout
    assert (trained / "evaluation_result.txt").is_file()
    p = docker("run", "--rm", "-v", f"{volume}:/app/data", TAG, "ls", "/app/data")
    assert any(name.startswith("bracket-") for name in p.stdout.split()), "the datasets outlive their containers"


def test_readme_hyper_study_lands_in_the_mounted_studies_folder(work, trained):
    folder, volume = work
    command = readme_command("hyper.py").replace("--time 10min", "--time 20s")
    docker(*adapt(command, folder, volume, ["--trial-budget", "2s", "--trials", "2", *TINY]), timeout=300)
    assert (folder / "optuna_studies" / "studies.db").is_file()
    best = folder / "optuna_studies" / "hyper_gru_bracket_1" / "best"
    assert (best / "model.safetensors").is_file(), os.listdir(folder / "optuna_studies")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, data=None, timeout=5):
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def test_readme_serve_answers_reports_health_and_stops(work, trained):
    folder, volume = work
    port, name = free_port(), f"harness-test-serve-{os.getpid()}"
    command = readme_command("serve.py").replace("127.0.0.1:8000:8000", f"127.0.0.1:{port}:8000")
    docker(*adapt(command, folder, volume, run_options=["-d", "--name", name, "--health-interval=1s"]))
    try:
        health = None
        for _ in range(240):  # a poll, not a time limit: serve.py loads torch and the run first
            health = docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
            running = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            if health == "healthy" or running != "true":
                break
            time.sleep(0.5)
        assert health == "healthy", docker("logs", name, check=False).stderr
        assert get(f"http://127.0.0.1:{port}/health") == (200, '{"status":"ok"}')
        status, page = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "<html" in page
        status, body = get(f"http://127.0.0.1:{port}/predict", {"inputs": ["(((", "【{("]})
        answers = json.loads(body)
        assert status == 200 and len(answers["outputs"]) == 2 and all(isinstance(o, str) for o in answers["outputs"])
        waiter = subprocess.Popen(["docker", "wait", name], stdout=subprocess.PIPE, text=True)  # --rm: the exit code, before it goes
        docker("stop", "-t", "30", name, timeout=60)
        assert waiter.communicate(timeout=60)[0].strip() == "0", "SIGTERM ends serve.py cleanly"
    finally:
        docker("rm", "-f", name, check=False)


def test_any_user_trains_into_a_folder_it_may_write(tmp_path, image):
    """An arbitrary --user (not the image's uid 1000) writes its run, and the dataset cache in the
    image's own data folder."""
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o777)
    p = docker("run", "--rm", "--user", "4321:4321", "-v", f"{models}:/app/models", image,
               "python", "train.py", "gru", "2s", *TINY, timeout=300)
    runs = os.listdir(models)
    assert len(runs) == 1 and os.stat(models / runs[0]).st_uid == 4321, (runs, p.stderr)


def test_a_folder_the_image_user_cannot_write_fails_before_training(tmp_path, image):
    """The README's train command without `mkdir` first: Docker makes models/ as root, and the
    image's user cannot write it. A 2-day budget: had it started training, it would not end."""
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o555)  # as a root-made folder is to uid 1000 (root on the host can still write it)
    p = docker("run", "--rm", "-v", f"{models}:/app/models", image, "python", "train.py", "gru", "2days", *TINY,
               check=False, timeout=240)
    assert p.returncode == 2, p.stdout + p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot write in models/" in errors[0] and "--user" in errors[0], p.stderr
    assert "Traceback" not in p.stderr and "step" not in p.stdout
    assert os.listdir(models) == []


def test_serve_target_answers_without_the_training_packages(work, trained):
    """`docker build --target serve`: predict.py and serve.py without optuna, pandas or onnx."""
    folder, _ = work
    build = [*shlex.split(os.environ.get("DOCKER_BUILD_ARGS", "")), "--target", "serve", "-t", f"{TAG}-serve", ROOT]
    docker("build", *build, timeout=1200)
    p = docker("run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{folder / 'models'}:/app/models",
               f"{TAG}-serve", "python", "predict.py", "--latest", "--json", "(((")
    assert json.loads(p.stdout.splitlines()[0])["input"] == "((("
    p = docker("run", "--rm", f"{TAG}-serve", "python", "-c", "import optuna", check=False)
    assert p.returncode != 0 and "ModuleNotFoundError" in p.stderr
