"""CSV and JSONL import for datasets and imported outputs: all rows or none, each error naming its row.

Columns / keys: `input` (a JSON object) or any other columns, which become input
variables; `expected_output` (alias `expected`), `context`, `metadata` (JSON object),
`tags` (JSON list or comma-separated), and for imported outputs `output`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

RESERVED = {"input", "expected_output", "expected", "context", "metadata", "tags", "output", "id"}
MAX_ROWS = 100_000


@dataclass
class Row:
    input: dict
    expected_output: str = ""
    context: str = ""
    metadata: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    output: str | None = None


@dataclass
class ImportResult:
    rows: list[Row]
    errors: list[tuple[int, str]]  # (1-based row number as the user counts it, message)
    format: str

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)


def _json_object(value: object, what: str) -> dict:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def _tags(value: object) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(t) for t in value]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"tags is not valid JSON ({exc.msg})") from None
            if not isinstance(parsed, list):
                raise ValueError("tags must be a list")
            return [str(t) for t in parsed]
        return [t.strip() for t in text.split(",") if t.strip()]
    raise ValueError("tags must be a list or comma-separated text")


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return json.dumps(value)
    raise ValueError(f"{what} must be text")


def _row(record: dict, *, require_output: bool) -> Row:
    inputs = _json_object(record.get("input"), "input")
    for key, value in record.items():
        if key not in RESERVED and key:
            inputs[key] = value
    expected = record.get("expected_output", record.get("expected"))
    row = Row(
        input=inputs,
        expected_output=_text(expected, "expected_output"),
        context=_text(record.get("context"), "context"),
        metadata=_json_object(record.get("metadata"), "metadata"),
        tags=_tags(record.get("tags")),
    )
    if require_output:
        if "output" not in record or record["output"] is None:
            raise ValueError("output is missing")
        row.output = _text(record["output"], "output")
    if not row.input and not require_output:
        raise ValueError("no input variables (give an `input` object or other columns)")
    return row


def parse(data: bytes, filename: str = "", *, require_output: bool = False) -> ImportResult:
    """Parse a whole file; every bad row is reported, and the caller stores nothing unless `ok`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return ImportResult([], [(0, f"the file is not UTF-8 text (byte {exc.start})")], "unknown")
    stripped = text.lstrip()
    is_jsonl = filename.lower().endswith((".jsonl", ".ndjson", ".json")) or stripped.startswith("{")
    rows: list[Row] = []
    errors: list[tuple[int, str]] = []
    if is_jsonl:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("each line must be a JSON object")
                rows.append(_row(record, require_output=require_output))
            except json.JSONDecodeError as exc:
                errors.append((number, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            except ValueError as exc:
                errors.append((number, str(exc)))
            if len(rows) > MAX_ROWS:
                return ImportResult([], [(number, f"more than {MAX_ROWS:,} rows")], "jsonl")
        fmt = "jsonl"
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            return ImportResult([], [(1, "the file has no header row")], "csv")
        if require_output and "output" not in reader.fieldnames:
            return ImportResult([], [(1, "the header has no `output` column")], "csv")
        for number, record in enumerate(reader, start=2):  # row 1 is the header
            if None in record:
                errors.append((number, f"{len(record[None])} more value(s) than header columns"))
                continue
            try:
                rows.append(_row(record, require_output=require_output))
            except ValueError as exc:
                errors.append((number, str(exc)))
            if len(rows) > MAX_ROWS:
                return ImportResult([], [(number, f"more than {MAX_ROWS:,} rows")], "csv")
        fmt = "csv"
    if not rows and not errors:
        errors.append((0, "the file has no rows"))
    return ImportResult(rows, errors, fmt)


def export_jsonl(items) -> str:
    lines = []
    for item in items:
        record = {"input": item.input, "expected_output": item.expected_output, "context": item.context,
                  "metadata": item.metadata, "tags": item.tags}  # fmt: skip
        lines.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")


def export_csv(items) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["input", "expected_output", "context", "metadata", "tags"])
    for item in items:
        writer.writerow([json.dumps(item.input, ensure_ascii=False), item.expected_output, item.context,
                         json.dumps(item.metadata, ensure_ascii=False), json.dumps(item.tags)])  # fmt: skip
    return out.getvalue()
