"""Writing and reading the Parquet tables (schemas in :mod:`pipeline.schemas`).

Each table is a folder ``OUT/<table>/`` of ``part-SSSSS-of-NNNNN.parquet`` files written by
Beam's ``WriteToParquet`` (temporary files, then an atomic rename, so a retried bundle never
leaves duplicates). A run first clears the folders of the tables it writes, so running twice
on the same input gives the same rows, not twice as many.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.schemas import TABLES

logger = logging.getLogger(__name__)


def table_dir(out_dir: str, table: str) -> str:
    return FileSystems.join(out_dir, table)


def clear_tables(out_dir: str, tables: Iterable[str]) -> None:
    """Delete what an earlier run wrote to ``tables`` under ``out_dir`` (any filesystem)."""
    for table in tables:
        path = table_dir(out_dir, table)
        if FileSystems.exists(path):
            FileSystems.delete([path])
            logger.info("cleared %s", path)


class WriteTable(beam.PTransform):
    """Records -> rows -> Parquet files of one table."""

    def __init__(
        self, out_dir: str, table: str, to_row: Callable[[Any], dict[str, Any]], shards: int = 1
    ):
        super().__init__()
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; known: {sorted(TABLES)}")
        self.out_dir = out_dir
        self.table = table
        self.to_row = to_row
        self.shards = shards

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        schema = TABLES[self.table][0]
        return (
            records
            | "ToRows" >> beam.Map(self.to_row)
            | "WriteParquet"
            >> beam.io.WriteToParquet(
                FileSystems.join(table_dir(self.out_dir, self.table), "part"),
                schema,
                file_name_suffix=".parquet",
                num_shards=self.shards,
                codec="zstd",
            )
        )


def read_table(out_dir: str, table: str) -> pa.Table:
    """All rows of ``table`` under ``out_dir`` (an empty table with the schema if none)."""
    schema = TABLES[table][0]
    path = os.path.join(out_dir, table)
    files = sorted(
        os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet")
    ) if os.path.isdir(path) else []
    if not files:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(f, schema=schema) for f in files)
