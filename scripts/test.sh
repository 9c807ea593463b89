#!/usr/bin/env bash
# The test suite on a fresh machine: install (with the test tools), then run pytest.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -k archs        # extra arguments go to pytest
source "$(dirname "$0")/venv.sh" requirements-dev.txt
python -m pytest -q "$@"
