"""Querying a run's Parquet tables with DuckDB (embedded), the same SQL a warehouse runs.

Every table folder under the output directory becomes a view of the same name, so
``SELECT * FROM calls`` works as it would in BigQuery, Athena or Trino over the same files.
Example queries ship in ``pipeline/sql/``; each starts with a ``-- `` line describing it.
"""

from __future__ import annotations

import os

import duckdb

SQL_DIR = os.path.join(os.path.dirname(__file__), "sql")


def connect(out_dir: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table found under ``out_dir``.

    Raises:
        ValueError: ``out_dir`` holds no tables.
    """
    if not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir!r} is not a folder of callscope tables (run `callscope run`)")
    con = duckdb.connect()
    found = []
    for name in sorted(os.listdir(out_dir)):
        folder = os.path.join(out_dir, name)
        if os.path.isdir(folder) and any(f.endswith(".parquet") for f in os.listdir(folder)):
            pattern = os.path.join(folder, "*.parquet").replace("'", "''")
            con.execute(
                f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{pattern}', "
                "union_by_name = true)"
            )
            found.append(name)
    if not found:
        raise ValueError(f"no Parquet tables under {out_dir!r}")
    return con


def list_examples() -> list[tuple[str, str]]:
    """``(name, description)`` of each shipped example query."""
    out = []
    for file in sorted(os.listdir(SQL_DIR)):
        if file.endswith(".sql"):
            with open(os.path.join(SQL_DIR, file), encoding="utf-8") as f:
                first = f.readline().strip()
            out.append((file[:-4], first.removeprefix("--").strip()))
    return out


def load_example(name: str) -> str:
    """The SQL text of the shipped example ``name``.

    Raises:
        ValueError: No such example.
    """
    path = os.path.join(SQL_DIR, f"{name}.sql")
    if not os.path.isfile(path):
        names = ", ".join(n for n, _ in list_examples())
        raise ValueError(f"no example query {name!r}; examples: {names}")
    with open(path, encoding="utf-8") as f:
        return f.read()
