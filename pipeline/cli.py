"""The ``callscope`` command line.

    callscope run INPUT --out DIR [--asr whisper|riva] [--riva-uri HOST:PORT] [beam options]
    callscope query "SQL" --out DIR          # DuckDB over the run's Parquet tables
    callscope query --example agent_scorecard --out DIR
    callscope consistency OUT_DIR [--kb approved.yaml]

Options the CLI does not know are passed to Beam, so ``--runner=DataflowRunner
--project=...`` or ``--direct_num_workers=4`` work as with any Beam pipeline.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace

logger = logging.getLogger("callscope")

class _WorkerLogFilter(logging.Filter):
    """Turn Beam's forwarded worker log protos into one readable line; drop Beam's own.

    FnApiRunner's multi-process workers send their log records to the driver, which prints
    the whole proto. Progress of callscope's stages is kept (with a call counter), the SDK
    harness chatter is dropped.
    """

    _message = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
    _location = re.compile(r'log_location: "([^"]*)"')

    def __init__(self, total_calls: int):
        super().__init__()
        self.total = total_calls
        self.done = 0

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith("Worker:"):
            return record.levelno >= logging.WARNING
        location = self._location.search(text)
        message = self._message.search(text)
        if not location or not message or f"{os.sep}pipeline{os.sep}" not in location.group(1):
            return False
        line = message.group(1).encode().decode("unicode_escape", errors="replace")
        if line.startswith("call "):
            self.done += 1
            line = f"[{self.done}/{self.total}] {line}"
        record.msg, record.args = line, ()
        return True


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    # Beam logs a warning about optional GCP clients on import; it is noise here.
    logging.getLogger().handlers[0].addFilter(
        lambda r: "apitools not found" not in r.getMessage()
    )
    if not verbose:
        for name in ("apache_beam", "faster_whisper"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.manifest import resolve_input
    from pipeline.run import RunConfig, run_specs

    config = RunConfig()
    config = replace(
        config,
        asr=replace(
            config.asr,
            backend=args.asr,
            riva_uri=args.riva_uri,
            device=args.device,
            compute_type=args.compute_type,
            cpu_threads=args.cpu_threads,
            model=args.whisper_model,
        ),
        audio=replace(
            config.audio,
            max_duration=args.max_duration,
            max_file_mb=args.max_file_mb,
            decode_timeout=args.decode_timeout,
        ),
        output_shards=args.output_shards,
    )
    specs, input_dead = resolve_input(args.input)
    if not args.verbose:
        job_logger = logging.getLogger("apache_beam.runners.portability.local_job_service")
        job_logger.setLevel(logging.INFO)
        job_logger.addFilter(_WorkerLogFilter(len(specs)))
    result = run_specs(specs, input_dead, args.out, config, beam_args)
    if args.consistency and result.utterances:
        print()
        _run_consistency(args.out, args.kb, [])
    print()
    print(f"callscope: {result.calls} calls ({result.calls_ok} processed, "
          f"{result.calls_failed} failed), {result.utterances} utterances, "
          f"{result.dead_letters} dead letters")
    if result.wall_seconds:
        print(f"audio {result.audio_seconds:.1f} s in {result.wall_seconds:.1f} s wall "
              f"({result.audio_seconds / result.wall_seconds:.1f}x real time)")
    tables = sorted(
        name for name in os.listdir(result.out_dir)
        if os.path.isdir(os.path.join(result.out_dir, name))
    )
    print(f"outputs: {os.path.abspath(result.out_dir)}/{{{','.join(tables)}}}/*.parquet")
    print(f'query:   callscope query --out {result.out_dir} "SELECT * FROM calls"')
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from pipeline.warehouse import connect, list_examples, load_example

    if args.list:
        for name, description in list_examples():
            print(f"{name:28} {description}")
        return 0
    if args.example:
        sql = load_example(args.example)
    elif args.file:
        with open(args.file, encoding="utf-8") as f:
            sql = f.read()
    elif args.sql:
        sql = args.sql
    else:
        print("callscope query: give SQL, --file, --example NAME or --list", file=sys.stderr)
        return 2
    con = connect(args.out)
    relation = con.sql(sql)
    if relation is None:
        return 0
    if args.format == "csv":
        relation.write_csv("/dev/stdout")
    elif args.format == "json":
        import json

        columns = relation.columns
        for row in relation.fetchall():
            print(json.dumps(dict(zip(columns, row, strict=True)), default=str))
    else:
        relation.show(max_rows=args.max_rows, max_width=200)
    return 0


def _run_consistency(out_dir: str, kb: str | None, beam_args: list[str]) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline import consistency

    options = PipelineOptions(beam_args) if beam_args else None
    consistency.run_consistency(
        os.path.join(out_dir, "utterances"),
        os.path.join(out_dir, "calls"),
        out_dir,
        kb_path=kb,
        pipeline_options=options,
    )
    print(consistency.summarize_findings(out_dir))


def _cmd_consistency(args: argparse.Namespace, beam_args: list[str]) -> int:
    _run_consistency(args.out_dir, args.kb, beam_args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callscope", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log Beam's own messages")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="process recordings into Parquet tables")
    run.add_argument("input", help="folder, glob or JSONL manifest of recordings")
    run.add_argument("--out", required=True, help="output folder (local or a Beam filesystem URI)")
    run.add_argument("--asr", choices=("whisper", "riva"), default="whisper")
    run.add_argument("--riva-uri", default="localhost:50051", help="Riva server HOST:PORT")
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                     help="device for Whisper (auto: CUDA when present)")
    run.add_argument("--compute-type", default="int8", help="CTranslate2 compute type")
    run.add_argument("--cpu-threads", type=int, default=1, help="Whisper threads per worker")
    run.add_argument("--whisper-model", default="", help="Whisper CTranslate2 model folder")
    run.add_argument("--max-duration", type=float, default=4 * 3600.0,
                     help="longest call accepted, in seconds (read from the header)")
    run.add_argument("--max-file-mb", type=float, default=2048.0,
                     help="largest file accepted, in MiB (checked before opening)")
    run.add_argument("--decode-timeout", type=float, default=600.0,
                     help="seconds allowed for decoding one file")
    run.add_argument("--output-shards", type=int, default=1,
                     help="Parquet files per table (0: let the runner decide)")
    run.add_argument("--no-consistency", dest="consistency", action="store_false",
                     help="skip the knowledge-consistency check across the run's calls")
    run.add_argument("--kb", help="approved answers (YAML or CSV) for the consistency check")

    query = sub.add_parser("query", help="SQL over a run's tables with DuckDB")
    query.add_argument("sql", nargs="?", help="SQL; tables: calls, utterances, dead_letter, ...")
    query.add_argument("--out", default="out/samples", help="the run's output folder")
    query.add_argument("--file", help="read the SQL from this file")
    query.add_argument("--example", help="run a shipped example query (see --list)")
    query.add_argument("--list", action="store_true", help="list the shipped example queries")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.add_argument("--max-rows", type=int, default=40)

    consistency = sub.add_parser("consistency", help="find questions answered differently")
    consistency.add_argument("out_dir", help="a run's output folder")
    consistency.add_argument("--kb", help="approved answers (YAML or CSV)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if args.command != "run" and args.command != "consistency" and beam_args:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    _setup_logging(args.verbose)
    try:
        if args.command == "run":
            return _cmd_run(args, beam_args)
        if args.command == "query":
            return _cmd_query(args)
        return _cmd_consistency(args, beam_args)
    except ValueError as e:
        print(f"callscope: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
