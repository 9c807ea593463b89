# CPU image of the harness; the README's "Docker" section has the commands, tests/test_docker.py runs them.
#   docker build -t harness .                          # everything: train, evaluate, tune, export, serve
#   docker build --target serve -t harness-serve .     # predict and serve only (requirements-serve.txt)
# Behind a mirror or offline, pip's settings are build arguments, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://mirror/pytorch/whl/cpu --build-arg PIP_INDEX_URL=https://mirror/pypi/simple -t harness .
#   docker build --network=host --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:8080/ -t harness .

FROM python:3.11-slim AS serve-deps
# pip reads its PIP_* settings from the environment; unset, they change nothing
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
# HARNESS_IMAGE: files.check_writable's one-line error then says how to mount a folder;
# MPLCONFIGDIR: matplotlib's cache in a place every --user can write
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HARNESS_IMAGE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
# torch from the CPU wheel index (the default index would bring CUDA packages), at the version the
# requirements pin, then the requirements themselves (the same files scripts/venv.sh installs)
COPY requirements-serve.txt .
RUN pip install --index-url "$TORCH_INDEX_URL" "$(grep -m1 '^torch==' requirements-serve.txt)" \
    && pip install -r requirements-serve.txt
# The image's user is uid 1000, but any `--user UID:GID` must be able to write every place a
# script writes (runs, studies, the dataset cache): those folders are open to all
RUN useradd --create-home --uid 1000 harness \
    && mkdir -p /app/models /app/optuna_studies /app/data \
    && chmod 0777 /app/models /app/optuna_studies /app/data

FROM serve-deps AS full-deps
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY requirements.txt .
RUN pip install -r requirements.txt

# predict.py and serve.py only: no optuna, pandas, matplotlib or onnx
FROM serve-deps AS serve
COPY --chown=1000:1000 . .
USER 1000:1000
VOLUME ["/app/models"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD ["python", "scripts/healthcheck.py"]
CMD ["python", "serve.py", "--latest", "--host", "0.0.0.0"]

# the default target: every script
FROM full-deps AS full
COPY --chown=1000:1000 . .
USER 1000:1000
VOLUME ["/app/models", "/app/optuna_studies", "/app/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD ["python", "scripts/healthcheck.py"]
CMD ["python", "train.py", "--help"]
