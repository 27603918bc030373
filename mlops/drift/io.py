"""Reading reference and current data from CSV or Parquet with pyarrow, streamed in record batches.

`read_table(path)` returns a `pyarrow.Table`; anything wrong with the file (missing, unreadable, not
CSV or Parquet, a row that does not parse) raises `DriftInputError` naming the file and, where pyarrow
says it, the column and the row.
"""

from __future__ import annotations

import csv
import os
import re
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

# Bytes per CSV block read at a time: parse buffers of a block live until it is converted, so a small
# block keeps the reader's peak near the table's own size (256 KB reads as fast as 1 MB).
CSV_BLOCK_SIZE = 1 << 18
PARQUET_BATCH_ROWS = 256_000


@cache
def memory_pool() -> pa.MemoryPool:
    """The Arrow memory pool of the process, chosen once on the first read.

    jemalloc (freed pages returned at once: see _memory.py) when this pyarrow has it and
    ARROW_DEFAULT_MEMORY_POOL does not choose a pool; pyarrow's default pool otherwise.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return pa.default_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:
        return pa.default_memory_pool()
    pa.set_memory_pool(pool)
    return pool


class DriftInputError(ValueError):
    """Bad input to the drift engine: the message names the file, column or row."""


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".csv", ".txt", ".tsv"}:
        return "csv"
    with path.open("rb") as f:
        return "parquet" if f.read(4) == b"PAR1" else "csv"


def _csv_error(path: Path, error: Exception, names: list[str]) -> DriftInputError:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    # pyarrow says "In CSV column #3: Row #1234: ..."; name the column as well as its number.
    match = re.search(r"CSV column #(\d+)", message)
    if match and int(match.group(1)) < len(names):
        index = int(match.group(1))
        message = message.replace(match.group(0), f"{match.group(0)} ({names[index]!r})")
        value = re.search(r"invalid value '(.*)'$", message)
        line = _line_of(path, index, value.group(1)) if value and "Row #" not in message else None
        if line is not None:
            message += f" on line {line}"
    return DriftInputError(f"{path}: cannot parse CSV: {message}")


def _line_of(path: Path, index: int, value: str) -> int | None:
    """The first line whose field number `index` is `value` (only read again when a conversion failed)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if number > 1 and len(row) > index and row[index] == value:
                return number
    return None


def read_csv(path: Path) -> pa.Table:
    """Read a CSV file block by block; the column types are inferred from the first block."""
    names: list[str] = []
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
            memory_pool=memory_pool(),
        )
        names = reader.schema.names
        batches = []
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as error:
        raise _csv_error(path, error, names) from None
    if not names:
        raise DriftInputError(f"{path}: no header row")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DriftInputError(f"{path}: duplicated column names: {', '.join(duplicated)}")
    return _contiguous(batches, reader.schema)


def _contiguous(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """The batches (the list is emptied) as a table with every column in one chunk.

    Combined column by column, each column's chunks freed as soon as it is copied, so the peak is the
    table plus one column. One chunk per column lets numbers be viewed in place as numpy arrays (see
    schema.to_numpy) instead of copied together for every comparison.
    """
    table = pa.Table.from_batches(batches, schema=schema)
    batches.clear()
    for i in range(table.num_columns):
        column = table.column(i)
        if column.num_chunks > 1:
            table = table.set_column(i, table.field(i), pa.chunked_array([column.combine_chunks()]))
    return table


def read_parquet(path: Path) -> pa.Table:
    """Read a Parquet file column by column (pyarrow.parquet, ~10 MB of RSS, is imported only here).

    One column at a time, each in one chunk: the reader's buffers then hold one column's pages, not
    the whole file's (reading all columns at once keeps about the file's size again in RSS).
    """
    import pyarrow.parquet as pq

    memory_pool()
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        if len(set(schema.names)) != len(schema.names):
            return _contiguous(list(parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)), schema)
        columns = []
        for name in schema.names:
            column = parquet.read(columns=[name]).column(0)
            columns.append(pa.chunked_array([column.combine_chunks()]) if column.num_chunks > 1 else column)
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
        raise DriftInputError(f"{path}: cannot read Parquet: {str(error).strip() or type(error).__name__}") from None


def read_table(path: str | Path) -> pa.Table:
    """Read a CSV or Parquet file (chosen by its extension, else by its first bytes) into a pyarrow Table."""
    path = Path(path)
    if not path.exists():
        raise DriftInputError(f"{path}: no such file")
    if not path.is_file():
        raise DriftInputError(f"{path}: not a file")
    try:
        kind = _format(path)
    except OSError as error:
        raise DriftInputError(f"{path}: cannot read: {error.strerror or error}") from None
    table = read_parquet(path) if kind == "parquet" else read_csv(path)
    if table.num_columns == 0:
        raise DriftInputError(f"{path}: no columns")
    return table


def check_same_columns(reference: pa.Table, current: pa.Table, reference_name: str, current_name: str) -> None:
    """DriftInputError naming the columns found in one file and not the other."""
    only_reference = [c for c in reference.column_names if c not in set(current.column_names)]
    only_current = [c for c in current.column_names if c not in set(reference.column_names)]
    problems = []
    if only_reference:
        problems.append(f"in {reference_name} but not in {current_name}: {', '.join(only_reference)}")
    if only_current:
        problems.append(f"in {current_name} but not in {reference_name}: {', '.join(only_current)}")
    if problems:
        raise DriftInputError("columns differ: " + "; ".join(problems))
