#!/usr/bin/env bash
# The test suite on a fresh machine: install (with the test tools), lint (ruff: pyproject.toml),
# then run pytest.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -k archs        # extra arguments go to pytest
source "$(dirname "$0")/venv.sh" requirements-dev.txt
# The Node.js client of exports (examples/node), where npm is: once per package-lock.json. Without
# it that client's test is skipped, never in CI.
if command -v npm >/dev/null; then
  stamp=examples/node/node_modules/.installed-$(sha256sum examples/node/package-lock.json | cut -c1-16)
  [ -f "$stamp" ] || { (cd examples/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) && touch "$stamp"; } \
    || echo "warning: could not install examples/node (npm ci)"
fi
ruff check --no-cache .
python -m pytest -q "$@"
