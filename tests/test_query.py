"""``callscope query``: quoted identifiers, shipped examples only, read-only by default."""

from __future__ import annotations

import os
import shutil

import apache_beam as beam
import pytest

from pipeline.cli import EXIT_USAGE, main
from pipeline.run import run
from pipeline.warehouse import connect, list_examples, load_example
from tests.conftest import FIXTURES

HOSTILE = "x\" AS SELECT 1; COPY (SELECT 42) TO '{target}'; CREATE VIEW \"y"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> str:
    """A real run's output: the edge-case files (four fail, six are processed)."""
    folder = tmp_path_factory.mktemp("query") / "out"
    run(str(FIXTURES / "bad"), str(folder), test_pipeline=beam.Pipeline(runner="FnApiRunner"))
    return str(folder)


def _query(out: str, *args: str) -> int:
    return main(["query", "--out", out, *args])


def test_a_hostile_folder_name_is_never_sql(out, tmp_path, capsys):
    target = tmp_path / "pwned.csv"
    hostile = os.path.join(out, HOSTILE.format(target=target))
    os.makedirs(hostile)
    shutil.copy(os.path.join(out, "calls", os.listdir(os.path.join(out, "calls"))[0]),
                os.path.join(hostile, "part-00000-of-00001.parquet"))
    try:
        for extra in ([], ["--allow-writes"]):
            assert _query(out, *extra, "--format", "csv", "SELECT count(*) AS n FROM calls") == 0
            assert capsys.readouterr().out.splitlines() == ["n", "10"]
            assert not target.exists()
        names = {r[0] for r in connect(out).sql("SHOW TABLES").fetchall()}
        assert "calls" in names and not any("COPY" in n for n in names)
    finally:
        shutil.rmtree(hostile)


def test_examples_are_only_the_shipped_ones(out, tmp_path, capsys):
    outside = tmp_path / "evil.sql"
    outside.write_text(f"COPY (SELECT 1) TO '{tmp_path / 'written.csv'}';\n")
    relative = os.path.relpath(outside.with_suffix(""), os.path.join("pipeline", "sql"))
    for name in (relative, str(outside.with_suffix("")), "../sql/calls_overview"):
        assert _query(out, "--example", name) == EXIT_USAGE, name
        assert "no example query" in capsys.readouterr().err
    assert not (tmp_path / "written.csv").exists()
    shipped = [n for n, _ in list_examples()]
    assert "calls_overview" in shipped and len(shipped) >= 10
    for name in shipped:
        # This run had no consistency stage: queries of its tables say so (exit 2).
        needs_consistency = "consistency_" in load_example(name).split("\n", 1)[1]
        expected = EXIT_USAGE if needs_consistency else 0
        assert _query(out, "--example", name, "--format", "json") == expected, name
    capsys.readouterr()


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM calls) TO '{tmp}/copy.csv'",
        "ATTACH '{tmp}/attached.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/hostname')",
        "SELECT * FROM read_parquet('{out}/.staging-x/calls/*.parquet')",
        "SELECT * FROM glob('/etc/*')",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "RESET lock_configuration",
    ],
)
def test_read_only_by_default(out, tmp_path, capsys, sql):
    sql = sql.format(tmp=tmp_path, out=out)
    assert _query(out, sql) == EXIT_USAGE
    assert "callscope query:" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_allow_writes_gives_plain_duckdb(out, tmp_path, capsys):
    target = tmp_path / "copy.csv"
    sql = f"COPY (SELECT call_id FROM calls ORDER BY call_id) TO '{target}' (HEADER false)"
    assert _query(out, "--allow-writes", sql) == 0
    assert len(target.read_text().splitlines()) == 10
    capsys.readouterr()


def test_no_sql_is_a_usage_error(out, capsys):
    assert _query(out) == EXIT_USAGE
    assert "give SQL" in capsys.readouterr().err
