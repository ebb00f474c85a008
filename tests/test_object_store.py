"""A whole run with input and output on ``s3://``: a real S3 API (moto's server on 127.0.0.1)
through Beam's S3 filesystem. The tables must equal a local run's.

Every S3 call here names the local endpoint and dummy keys: with boto3 installed, an ``s3://``
path without an endpoint would go looking for real AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import FIXTURES
from tests.helpers_outputs import run_cli, snapshot

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

BUCKET = "callscope-test"
CALLS = ["bad-short-call.flac", "notes.wav"]  # one call processed, one failing in decode
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **DUMMY_AWS},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.kill()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def s3_args(endpoint) -> list[str]:
    return [
        f"--s3_endpoint_url={endpoint}",
        "--s3_access_key_id=testing",
        "--s3_secret_access_key=testing",
        "--s3_region_name=us-east-1",
    ]


@pytest.fixture(scope="module")
def s3_input(endpoint) -> str:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    rows = []
    for name in CALLS:
        client.upload_file(str(FIXTURES / "bad" / name), BUCKET, f"in/{name}")
        rows.append({"call_id": name.split(".")[0], "audio": f"s3://{BUCKET}/in/{name}",
                     "agent_id": "agent-7"})
    client.put_object(Bucket=BUCKET, Key="in/manifest.jsonl",
                      Body="\n".join(json.dumps(r) for r in rows).encode())
    return f"s3://{BUCKET}/in/manifest.jsonl"


@pytest.fixture()
def s3_filesystem(s3_args) -> Iterator[None]:
    """This process's FileSystems pointed at the local endpoint (restored afterwards)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    saved = FileSystems._pipeline_options
    FileSystems.set_options(PipelineOptions(s3_args))
    try:
        yield
    finally:
        FileSystems.set_options(saved)


def _differs_by_design(column: str) -> bool:
    # Where the audio was (s3:// vs a local path) and wall time differ by design.
    return column in {"processing_seconds", "audio", "message", "source"}


def test_a_run_on_s3_writes_the_same_tables_as_a_local_run(
    s3_input, s3_args, s3_filesystem, tmp_path
):
    from pipeline.publish import read_text
    from pipeline.sinks import table_files

    out = f"s3://{BUCKET}/out"
    args = ["--no-consistency", "--direct_num_workers=1"]
    env = DUMMY_AWS
    code, stdout, err = run_cli("run", s3_input, "--out", out, *args, *s3_args, env=env,
                                timeout=300)
    assert code == 0, err
    assert f"outputs: {out}/" in stdout

    local_in = tmp_path / "in"
    local_in.mkdir()
    with open(local_in / "manifest.jsonl", "w", encoding="utf-8") as f:
        for name in CALLS:
            shutil.copy(FIXTURES / "bad" / name, local_in / name)
            f.write(json.dumps({"call_id": name.split(".")[0], "audio": name,
                                "agent_id": "agent-7"}) + "\n")
    local_out = str(tmp_path / "out")
    code, _, err = run_cli("run", str(local_in / "manifest.jsonl"), "--out", local_out, *args,
                           timeout=300)
    assert code == 0, err

    remote = snapshot(out, drop=_differs_by_design)
    local = snapshot(local_out, drop=_differs_by_design)
    assert remote == local
    assert len(remote["calls"]) == 2 and len(remote["utterances"]) > 0
    assert len(remote["dead_letter"]) == 1
    assert json.loads(read_text(f"{out}/run.json"))["result"]["calls_ok"] == 1
    success = json.loads(read_text(f"{out}/_SUCCESS"))
    assert success["run_id"] == json.loads(read_text(f"{out}/run.json"))["run_id"]
    assert table_files(out, "calls")[0].startswith(f"{out}/calls/part-")

    # A second run into the same bucket replaces every table (here: only the failing call).
    client = boto3.client("s3", endpoint_url=s3_args[0].split("=", 1)[1],
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.put_object(Bucket=BUCKET, Key="in/failing.jsonl", Body=json.dumps(
        {"call_id": "notes", "audio": f"s3://{BUCKET}/in/notes.wav"}).encode())
    code, _, err = run_cli("run", f"s3://{BUCKET}/in/failing.jsonl", "--out", out, *args,
                           *s3_args, env=env, timeout=300)
    assert code == 3, err  # no call processed
    again = snapshot(out)
    assert [json.loads(r)["call_id"] for r in again["calls"]] == ["notes"]
    assert again["utterances"] == [] and len(again["dead_letter"]) == 1
    from pipeline.publish import children

    assert [n for n in children(out) if n.startswith(".")] == []

    # Queries read the published tables through FileSystems.
    code, stdout, err = run_cli("query", "--out", out, "--format", "csv", *s3_args,
                                "SELECT call_id, status FROM calls ORDER BY call_id", env=env)
    assert code == 0, err
    assert stdout.splitlines() == ["call_id,status", "notes,failed"]
