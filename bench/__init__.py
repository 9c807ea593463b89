"""The benchmarks, run as modules from the repository root; each writes its rows under
bench/results (always) and with --commit also git-commits them after each run:

    python -m bench            architectures x tasks x budgets x seeds (bench/run.py)
    python -m bench.finetune   transfer, LoRA against full fine-tuning, forgetting
    python -m bench.runtimes   PyTorch against its ONNX and int8 exports
    python -m bench.load       serve.py under concurrent clients

This file imports nothing, so that `python -m bench.<name>` starts with that script alone."""
