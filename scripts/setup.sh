#!/usr/bin/env bash
# Create .venv (Python 3.11) and install callscope with its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# One resolver pass for Beam and the Riva client: installed one after the other, Riva pulls
# a grpcio-tools that wants protobuf 7, which Beam refuses (pinned in pyproject.toml).
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
