"""Driver memory of listing a big manifest: on the driver (``beam.Create``) vs in the pipeline.

``resolve_input`` + ``beam.Create`` builds a CallSpec per manifest row on the driver and
embeds all of them in the job graph that is submitted to the runner; ``ListInputs`` reads
the manifest on a worker, so the driver holds only the path. For each manifest size this
measures, in a fresh process per case:

- ``graph_mb``: the serialized pipeline (what a remote runner such as Dataflow receives),
- ``driver_peak_mb``: the process's peak RSS after building and serializing the pipeline
  (what the driver holds before any worker runs),
- with ``--execute``: the same pipeline run to the end on FnApiRunner in this process
  (worker and runner share the process here, so its peak includes the workers' shuffle),
  with the number of calls and dead letters counted.

The manifest rows are synthetic (``call-000001`` ... pointing at files that need not exist:
only listing is measured). Usage::

    .venv/bin/python benchmarks/bench_listing.py [--rows 10000 100000] [--execute]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_manifest(path: Path, rows: int) -> None:
    """``rows`` lines; every 1000th is malformed, so dead letters are listed too."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            if i % 1000 == 999:
                f.write("not json\n")
                continue
            f.write(json.dumps({
                "call_id": f"call-{i:06d}", "audio": f"calls/call-{i:06d}.flac",
                "agent_id": f"agent-{i % 50:02d}", "queue": "billing",
                "started_at": "2026-11-02T09:14:00Z", "channels": {"agent": 0, "customer": 1},
            }) + "\n")


def measure(manifest: str, mode: str, execute: bool) -> dict[str, object]:
    """One case, in this process: build (and maybe run) a listing pipeline."""
    import apache_beam as beam

    from pipeline.manifest import ListInputs, resolve_input

    started = time.perf_counter()
    p = beam.Pipeline(runner="FnApiRunner")
    if mode == "driver":
        specs, dead = resolve_input(manifest)
        listed_specs = p | "ListCalls" >> beam.Create(specs)
        rejected = p | "InputFailures" >> beam.Create(dead)
    else:
        listed = p | "ListInputs" >> ListInputs(manifest)
        listed_specs, rejected = listed.specs, listed[ListInputs.REJECTED]
    counts = {
        "calls": listed_specs | "SpreadCalls" >> beam.Reshuffle() | "CountCalls"
        >> beam.combiners.Count.Globally(),
        "dead": rejected | "CountDead" >> beam.combiners.Count.Globally(),
    }
    out = tempfile.mkdtemp(prefix="bench-listing-")
    for name, pcoll in counts.items():
        _ = pcoll | f"Write{name}" >> beam.io.WriteToText(os.path.join(out, name))
    graph_bytes = len(p.to_runner_api().SerializeToString())
    result: dict[str, object] = {
        "mode": mode,
        "graph_mb": round(graph_bytes / 2**20, 2),
        "driver_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    if execute:
        p.run().wait_until_finish()
        for name in counts:
            with open(os.path.join(out, f"{name}-00000-of-00001"), encoding="utf-8") as f:
                result[name] = int(f.read())
        result["run_peak_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        result["total_seconds"] = round(time.perf_counter() - started, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--execute", action="store_true", help="also run each pipeline")
    parser.add_argument("--case", nargs=2, metavar=("MANIFEST", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child process measuring one case
        print(json.dumps(measure(args.case[0], args.case[1], args.execute)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as folder:
        for rows in args.rows:
            manifest = Path(folder) / f"manifest-{rows}.jsonl"
            write_manifest(manifest, rows)
            for mode in ("driver", "pipeline"):
                command = [sys.executable, __file__, "--case", str(manifest), mode]
                if args.execute:
                    command.append("--execute")
                line = subprocess.run(command, check=True, capture_output=True, text=True,
                                      cwd=ROOT).stdout.strip().splitlines()[-1]
                case = {"rows": rows, **json.loads(line)}
                results.append(case)
                print(json.dumps(case), flush=True)


if __name__ == "__main__":
    main()
