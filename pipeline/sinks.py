"""Writing and reading the Parquet tables (schemas in :mod:`pipeline.schemas`).

Each table is a folder ``OUT/<table>/`` of ``part-SSSSS-of-NNNNN.parquet`` files written by
Beam's ``WriteToParquet`` (temporary files, then an atomic rename, so a retried bundle never
leaves duplicates). A run writes its tables into a staging folder and publishes them whole,
replacing the earlier run's folders (:mod:`pipeline.publish`), so running twice on the same
input gives the same rows, not twice as many, and a killed run leaves the earlier output as it
was. Reading goes through Beam's ``FileSystems``, so ``gs://`` and ``s3://`` outputs read back
like local ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.publish import files_under, read_guard, settle
from pipeline.schemas import TABLES

logger = logging.getLogger(__name__)


def table_dir(out_dir: str, table: str) -> str:
    return FileSystems.join(out_dir, table)


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


def table_files(out_dir: str | os.PathLike[str], table: str) -> list[str]:
    """The Parquet files of a published table (any filesystem; [] if there are none)."""
    return files_under(table_dir(os.fspath(out_dir), table), "*.parquet")


def read_table(out_dir: str | os.PathLike[str], table: str) -> pa.Table:
    """All rows of the published ``table`` under ``out_dir`` (empty, with the schema, if none).

    A publish that a killed run left half done is finished first (:func:`pipeline.publish.settle`),
    so the rows never mix two runs.
    """
    schema = TABLES[table][0]
    out_dir = os.fspath(out_dir)
    settle(out_dir)
    with read_guard(out_dir):
        parts = []
        for path in table_files(out_dir, table):
            with FileSystems.open(path, compression_type="uncompressed") as f:
                parts.append(pq.read_table(pa.BufferReader(f.read()), schema=schema))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)
