"""Atomic, exclusive, idempotent outputs: the real CLI, killed and raced (pipeline.publish).

Tiny inputs keep it quick: two broken files (both calls fail: a full Beam run in about 5 s) and
one short generated call (a real Whisper run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from pipeline.publish import (
    LOCK_FILE,
    STAGING_PREFIX,
    OutputBusyError,
    OutputLock,
    staging_dirs,
)
from pipeline.sinks import read_table
from tests.conftest import FIXTURES
from tests.helpers_outputs import (
    FAST,
    finish,
    kill_group,
    published_run,
    run_cli,
    snapshot,
    start_cli,
)

BAD = FIXTURES / "bad"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    broken, other, good = root / "broken", root / "other", root / "good"
    for folder, names in (
        (broken, ["empty.wav", "notes.wav"]),
        (other, ["truncated.flac"]),
        (good, ["bad-short-call.flac"]),
    ):
        folder.mkdir()
        for name in names:
            shutil.copy(BAD / name, folder / name)
    return {"broken": broken, "other": other, "good": good}


@pytest.fixture(scope="module")
def earlier_run(inputs, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("earlier") / "out")
    code, _, err = run_cli("run", str(inputs["broken"]), "--out", out, *FAST)
    assert code == 3, err  # every call failed: documented exit status 3
    return out


@pytest.fixture()
def previous(earlier_run, tmp_path) -> tuple[str, dict[str, list[str]], str]:
    """An output folder holding a complete earlier run (of the two broken files)."""
    out = str(tmp_path / "out")
    shutil.copytree(earlier_run, out)
    return out, snapshot(out), published_run(out)["run_id"]


def _no_leftovers(out: str) -> None:
    assert staging_dirs(out) == []
    assert not [n for n in os.listdir(out) if n.startswith(STAGING_PREFIX)]


@pytest.mark.parametrize("point", ["publish:before", "pipeline"])
def test_a_run_killed_before_publishing_leaves_the_previous_output_whole(
    inputs, previous, point
):
    out, before, run_id = previous
    env = {"CALLSCOPE_FAILPOINT": point} if point.startswith("publish") else None
    proc = start_cli("run", str(inputs["other"]), "--out", out, *FAST, env=env)
    if point == "pipeline":
        # Kill the driver (SIGKILL) while Beam writes into the staging folder.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            os.path.isdir(os.path.join(s, "calls")) for s in staging_dirs(out)
        ):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    code, _, err = finish(proc)
    assert code == -signal.SIGKILL, err
    assert len(staging_dirs(out)) == 1  # the killed run's staging folder...
    assert snapshot(out) == before  # ...which readers never see
    assert published_run(out)["run_id"] == run_id
    # The next run deletes the leftovers and publishes its own tables.
    code, _, err = run_cli("run", str(inputs["other"]), "--out", out, *FAST)
    assert code == 3, err
    _no_leftovers(out)
    assert [r["call_id"] for r in read_table(out, "calls").to_pylist()] == ["truncated"]


@pytest.mark.parametrize("point", ["publish:journal", "publish:calls", "publish:success"])
def test_a_publish_killed_half_way_is_finished_by_the_next_reader(inputs, previous, point):
    out, before, run_id = previous
    code, _, err = run_cli("run", str(inputs["other"]), "--out", out, *FAST,
                           env={"CALLSCOPE_FAILPOINT": point})
    assert code == -signal.SIGKILL, err
    # Whatever the publish had done, a reader finishes it before reading: the new run, whole.
    after = snapshot(out)
    assert [json.loads(r)["call_id"] for r in after["calls"]] == ["truncated"]
    assert [json.loads(r)["call_id"] for r in after["dead_letter"]] == ["truncated"]
    assert published_run(out)["run_id"] != run_id
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        assert json.load(f)["run_id"] == published_run(out)["run_id"]
    _no_leftovers(out)


def test_callscope_query_finishes_an_interrupted_publish_too(inputs, previous):
    out, _, _ = previous
    code, _, _ = run_cli("run", str(inputs["other"]), "--out", out, *FAST,
                         env={"CALLSCOPE_FAILPOINT": "publish:calls"})
    assert code == -signal.SIGKILL
    code, stdout, err = run_cli("query", "--out", out, "--format", "csv",
                                "SELECT call_id, status FROM calls ORDER BY call_id")
    assert code == 0, err
    assert stdout.splitlines() == ["call_id,status", "truncated,failed"]


def test_killing_a_worker_leaves_one_whole_output(inputs, previous):
    """A Beam worker killed mid-run: the run either fails (or hangs and is killed: FnApiRunner's
    multi-process driver waits for a dead worker, measured here with Beam 2.77) and the earlier
    output stays, or Beam recovers and publishes the new one whole; never a mix."""
    import psutil

    out, before, run_id = previous
    proc = start_cli("run", str(inputs["good"]), "--out", out, "--no-consistency",
                     "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    driver = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    killed = None
    while time.monotonic() < deadline and killed is None and proc.poll() is None:
        workers = [c for c in driver.children(recursive=True)
                   if "sdk_worker_main" in " ".join(c.cmdline()) and "python" in c.name()]
        if workers and staging_dirs(out):
            time.sleep(1.0)  # let it start work
            workers[0].kill()
            killed = workers[0].pid
        time.sleep(0.1)
    assert killed, "no Beam worker process appeared"
    try:
        code, _, err = finish(proc, timeout=90)
    except AssertionError:
        code = None  # the driver waited for the dead worker: killed by the timeout
    kill_group(proc)
    after = snapshot(out)
    if code == 0:
        calls = [json.loads(r) for r in after["calls"]]
        assert [(c["call_id"], c["status"]) for c in calls] == [("bad-short-call", "ok")]
        assert len(after["utterances"]) == calls[0]["num_utterances"] > 0
        assert len(after["utterance_labels"]) == len(after["utterances"])
        assert published_run(out)["run_id"] != run_id
    else:
        assert after == before
        assert published_run(out)["run_id"] == run_id


def test_a_second_run_into_a_held_folder_refuses_or_waits(inputs, tmp_path):
    out = str(tmp_path / "out")
    lock = OutputLock(out, "run-held-by-the-test")
    lock.acquire()
    try:
        code, _, err = run_cli("run", str(inputs["broken"]), "--out", out, *FAST)
        assert code == 2
        assert "is in use by run run-held-by-the-test" in err
        assert f"pid {os.getpid()}" in err and "--wait" in err
        waiting = start_cli("run", str(inputs["broken"]), "--out", out, *FAST, "--wait")
        time.sleep(3.0)
        assert waiting.poll() is None  # still waiting for the lock
        assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    finally:
        lock.release()
    code, _, err = finish(waiting)
    assert code == 3, err
    assert len(read_table(out, "calls")) == 2


def test_two_concurrent_runs_and_idempotent_reruns(inputs, tmp_path):
    """Run A (a real call) holds the folder; B refuses; C waits, then re-runs the same input:
    every table holds the same rows as after A, none twice, consistency tables included."""
    out = str(tmp_path / "out")
    stale = Path(out) / "consistency_qa_pairs" / "v000009-00000-of-00001.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not parquet: an earlier run's file that must not survive")
    a = start_cli("run", str(inputs["good"]), "--out", out, "--direct_num_workers=1")
    lock_file = os.path.join(out, LOCK_FILE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        os.path.exists(lock_file) and os.path.getsize(lock_file)
    ):
        time.sleep(0.05)
    b_code, _, b_err = run_cli("run", str(inputs["good"]), "--out", out, *FAST)
    c = start_cli("run", str(inputs["good"]), "--out", out, "--direct_num_workers=1", "--wait")
    a_code, _, a_err = finish(a, timeout=300)
    assert a_code == 0, a_err
    assert b_code == 2 and "in use by run" in b_err, b_err
    first, first_run = snapshot(out), published_run(out)["run_id"]
    assert not stale.exists()
    c_code, _, c_err = finish(c, timeout=300)
    assert c_code == 0, c_err
    assert published_run(out)["run_id"] != first_run
    second = snapshot(out)
    assert second == first
    for table, rows in second.items():
        assert len(rows) == len(set(rows)), f"{table} has duplicate rows"
    assert len(second["calls"]) == 1 and len(second["utterances"]) > 0
    _no_leftovers(out)


def test_the_lock_names_its_holder_and_waits_with_a_timeout(tmp_path):
    out = str(tmp_path / "out")
    first = OutputLock(out, "first-run")
    first.acquire()
    try:
        with pytest.raises(OutputBusyError, match=r"in use by run first-run \(pid \d+ on "):
            OutputLock(out, "second-run").acquire()
        started = time.monotonic()
        with pytest.raises(OutputBusyError):
            OutputLock(out, "second-run", wait=True, timeout=0.5).acquire()
        assert time.monotonic() - started >= 0.5
    finally:
        first.release()
    with OutputLock(out, "second-run", wait=True, timeout=5):
        with open(os.path.join(out, LOCK_FILE), encoding="utf-8") as f:
            assert json.load(f)["run_id"] == "second-run"
