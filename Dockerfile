# CPU image of the harness. Build:  docker build -t harness .
# Train:  docker run --rm -it -v "$PWD/models:/app/models" -v "$PWD/optuna_studies:/app/optuna_studies" harness python train.py
# Serve:  docker run --rm -p 8000:8000 -v "$PWD/models:/app/models" harness python serve.py --latest --host 0.0.0.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch from the CPU wheel index (the default index would bring CUDA packages), then the same
# requirements file that scripts/venv.sh installs in a virtual environment.
COPY requirements.txt .
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home --uid 1000 harness \
    && mkdir -p /app/models /app/optuna_studies /app/data \
    && chown -R harness:harness /app
COPY --chown=harness:harness . .
USER 1000:1000

VOLUME ["/app/models", "/app/optuna_studies"]
EXPOSE 8000
CMD ["python", "train.py", "--help"]
