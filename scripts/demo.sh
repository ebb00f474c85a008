#!/usr/bin/env bash
# Set up, then run callscope on the bundled sample calls and show what came out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-out/samples}
.venv/bin/callscope run samples/manifest.jsonl --out "$OUT" "$@"
echo
.venv/bin/callscope query --out "$OUT" --example calls_overview
.venv/bin/callscope query --out "$OUT" --example call_scorecards
echo "More: .venv/bin/callscope query --out $OUT --list"
