#!/usr/bin/env bash
# Set up, then run the test suite (real models, real Beam runs) and the linters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check pipeline models tests benchmarks tools
.venv/bin/python -m pytest tests "$@"
