"""Running the real ``callscope`` CLI in a subprocess, and snapshots of an output folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from pipeline.schemas import TABLES
from pipeline.sinks import read_table
from tests.conftest import ROOT

# Columns that measure the run rather than the call (wall time), or name where the audio was.
VOLATILE_COLUMNS = {"processing_seconds"}
# One in-process worker: the quickest local run for tiny inputs.
FAST = ["--no-consistency", "--direct_num_workers=1"]


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m pipeline.cli ARGS`` in its own process group (so workers can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    """Wait for ``proc`` (killing its whole group after ``timeout``); exit status and output."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"callscope did not finish in {timeout} s:\n{err[-3000:]}") from None
    finally:
        kill_group(proc)
    return proc.returncode, out, err


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL every process left in ``proc``'s group (orphaned Beam workers included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 180) -> tuple[int, str, str]:
    return finish(start_cli(*args, env=env), timeout)


def snapshot(out: str, drop: Callable[[str], bool] = VOLATILE_COLUMNS.__contains__,
             ) -> dict[str, list[str]]:
    """Every table's rows (sorted, as JSON, without volatile columns): what a reader sees."""
    tables = {}
    for name in TABLES:
        rows = read_table(out, name).to_pylist()
        tables[name] = sorted(
            json.dumps({k: v for k, v in row.items() if not drop(k)}, sort_keys=True, default=str)
            for row in rows
        )
    return tables


def published_run(out: str) -> dict[str, Any]:
    with open(os.path.join(out, "_SUCCESS"), encoding="utf-8") as f:
        return json.load(f)
