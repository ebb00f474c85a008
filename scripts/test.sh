#!/usr/bin/env bash
# Set up, then run the linters (ruff, mypy) and the test suite (real models, real Beam runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check pipeline models tests benchmarks tools
.venv/bin/mypy pipeline models
.venv/bin/python -m pytest tests "$@"
