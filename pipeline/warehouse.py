"""Querying a run's Parquet tables with DuckDB (embedded), the same SQL a warehouse runs.

Every published table under the output folder becomes a view of the same name, so
``SELECT * FROM calls`` works as it would in BigQuery, Athena or Trino over the same files.
Only tables callscope knows (:data:`pipeline.schemas.TABLES`) are exposed, and their names are
quoted, so a folder's name never becomes SQL. Example queries ship in ``pipeline/sql/``; each
starts with a ``-- `` line describing it.

``callscope query`` is full DuckDB SQL. By default the connection is read-only towards the
outside world: DuckDB's ``enable_external_access`` is off (no ``COPY ... TO``, ``ATTACH``,
``INSTALL``, no reading files other than the run's tables) and ``lock_configuration`` keeps it
off. ``allow_writes=True`` gives plain DuckDB, which reads and writes any file the user can.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import duckdb

from pipeline.publish import is_local, read_guard, settle
from pipeline.schemas import TABLES
from pipeline.sinks import read_table, table_dir, table_files

SQL_DIR = os.path.join(os.path.dirname(__file__), "sql")


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB (standard SQL) quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def connect(out_dir: str | os.PathLike[str],
            allow_writes: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per published table under ``out_dir``.

    Local tables are views over their Parquet files (read when queried); tables on another
    filesystem (``gs://``, ``s3://``) are read through Beam's ``FileSystems`` into memory.

    Args:
        out_dir: A run's output folder.
        allow_writes: Leave DuckDB's access to other files on (``COPY``, ``ATTACH``, ...).

    Raises:
        ValueError: ``out_dir`` holds no tables.
    """
    out_dir = os.fspath(out_dir)
    if is_local(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir!r} is not a folder of callscope tables (run `callscope run`)")
    settle(out_dir)
    con = duckdb.connect()
    found, allowed = [], []
    for name in TABLES:
        files = table_files(out_dir, name)
        if not files:
            continue
        if is_local(out_dir):
            folder = os.path.abspath(table_dir(out_dir, name))
            pattern = os.path.join(folder, "*.parquet")
            con.execute(
                f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM "
                f"read_parquet({quote_literal(pattern)}, union_by_name = true)"
            )
            allowed.append(folder + os.sep)
        else:
            con.register(f"_arrow_{name}", read_table(out_dir, name))
            con.execute(
                f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM "
                f"{quote_identifier('_arrow_' + name)}"
            )
        found.append(name)
    if not found:
        raise ValueError(f"no Parquet tables under {out_dir!r}")
    if not allow_writes:
        con.execute(
            "SET allowed_directories = [" + ", ".join(quote_literal(a) for a in allowed) + "]"
        )
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


@contextlib.contextmanager
def reading(out_dir: str) -> Iterator[None]:
    """Hold ``out_dir``'s read lock while a query runs, so no publish swaps tables under it."""
    with read_guard(out_dir):
        yield


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
    """The SQL text of the shipped example ``name`` (only those in ``pipeline/sql/``).

    Raises:
        ValueError: No such example.
    """
    names = [n for n, _ in list_examples()]
    if name not in names:
        raise ValueError(f"no example query {name!r}; examples: {', '.join(names)}")
    path = os.path.join(SQL_DIR, f"{name}.sql")
    with open(path, encoding="utf-8") as f:
        return f.read()
