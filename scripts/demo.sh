#!/usr/bin/env bash
# The main job on a fresh machine: install, train one model for a short budget, score it.
#   bash scripts/demo.sh                 # gru for 1min on bracket closing
#   bash scripts/demo.sh gpt 2min        # any architecture and budget
source "$(dirname "$0")/venv.sh" requirements.txt
python train.py "${1:-gru}" "${2:-1min}" "${@:3}"
python evaluate.py --latest
