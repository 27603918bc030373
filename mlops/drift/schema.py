"""Column types: inferred from the reference data, overridable per column.

Types: ``numerical``, ``categorical``, ``boolean``, ``text``, ``datetime``, ``id``. Drift is computed for
numerical, categorical and boolean columns; text, datetime and id columns are listed as skipped.
Roles: a column named like a prediction (``prediction``, ``pred``, ``y_pred``, ``score``...) or a target
(``target``, ``label``, ``y``, ``y_true``...) gets that role; its type is inferred like any other.

Inference (on the reference, non-missing values):
- Arrow booleans, and strings whose values are all true/false-like words, are ``boolean``;
- dates and timestamps, and strings that all parse as ISO dates or timestamps, are ``datetime``;
- integers named like an identifier (``id``, ``*_id``, ``uuid``...) with every value distinct are ``id``;
  other numbers are ``numerical`` (few distinct values then pick a categorical method, as Evidently does);
- strings with every value distinct are ``id`` when they hold no spaces, else ``text``; strings averaging
  more than 30 characters with spaces and more than half distinct are ``text``; other strings are
  ``categorical``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TYPES = ("numerical", "categorical", "boolean", "text", "datetime", "id")
DRIFT_TYPES = frozenset({"numerical", "categorical", "boolean"})
PREDICTION_NAMES = frozenset({"prediction", "predictions", "pred", "predicted", "y_pred", "score", "prediction_label"})
TARGET_NAMES = frozenset({"target", "label", "labels", "y", "y_true", "ground_truth", "actual", "class"})
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$|^id_", re.IGNORECASE)
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f"})
# Strings: rows looked at to decide between categorical, text, id and datetime.
SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its name, type (one of TYPES) and role (``feature``, ``prediction`` or ``target``)."""

    name: str
    type: str
    role: str = "feature"

    def to_dict(self) -> dict:
        return asdict(self)


def role_of(name: str) -> str:
    lowered = name.lower()
    if lowered in PREDICTION_NAMES:
        return "prediction"
    if lowered in TARGET_NAMES:
        return "target"
    return "feature"


def _string_type(name: str, values: pa.ChunkedArray) -> str:
    sample = values.drop_null().slice(0, SAMPLE_ROWS)
    if len(sample) == 0:
        return "categorical"
    distinct = pc.count_distinct(sample).as_py()
    lowered = pc.unique(pc.utf8_lower(sample)).to_pylist()
    if set(lowered) <= BOOLEAN_WORDS and len(lowered) <= 2:
        return "boolean"
    try:
        pc.cast(sample, pa.timestamp("us"))
        return "datetime"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    lengths = pc.utf8_length(sample)
    mean_length = pc.mean(lengths).as_py() or 0
    has_space = pc.any(pc.match_substring(sample, " ")).as_py()
    if len(sample) >= 20 and distinct == len(sample):
        return "text" if has_space else "id"
    if mean_length > 30 and has_space and distinct > len(sample) / 2:
        return "text"
    return "categorical"


def infer_type(name: str, values: pa.ChunkedArray) -> str:
    """The type of one column from its values (see the module docstring)."""
    kind = values.type
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return "datetime"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if pa.types.is_integer(kind) and ID_NAME.search(name):
            present = values.drop_null()
            if len(present) and pc.count_distinct(present).as_py() == len(present):
                return "id"
        return "numerical"
    if pa.types.is_dictionary(kind):
        return "categorical"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _string_type(name, values)
    if pa.types.is_null(kind):
        return "numerical"
    return "text"


def infer_schema(table: pa.Table) -> dict[str, ColumnSchema]:
    """Every column of `table` with its inferred type and role."""
    return {
        name: ColumnSchema(name, infer_type(name, table.column(name)), role_of(name)) for name in table.column_names
    }


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["col=categorical", ...]`` as a dict; ValueError naming an item that is not ``COLUMN=VALUE``."""
    overrides: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{item!r} is not COLUMN=VALUE")
        overrides[name] = value.strip()
    return overrides


def apply_overrides(schema: dict[str, ColumnSchema], types: dict[str, str]) -> dict[str, ColumnSchema]:
    """`schema` with the given columns' types replaced; ValueError naming an unknown column or type."""
    unknown = [name for name in types if name not in schema]
    if unknown:
        raise ValueError(f"unknown column(s) in --column-type: {', '.join(unknown)}; columns: {', '.join(schema)}")
    result = dict(schema)
    for name, kind in types.items():
        if kind not in TYPES:
            raise ValueError(f"unknown column type {kind!r} for {name!r}; choose from {', '.join(TYPES)}")
        result[name] = ColumnSchema(name, kind, schema[name].role)
    return result


def _numpy_dtype(kind: pa.DataType) -> np.dtype | None:
    """The numpy dtype of a fixed-width Arrow number type (None for any other type); Arrow's buffers are
    in the machine's byte order, as numpy's native dtypes."""
    if pa.types.is_floating(kind) and kind.bit_width in (32, 64):
        return np.dtype(f"f{kind.bit_width // 8}")
    if pa.types.is_signed_integer(kind):
        return np.dtype(f"i{kind.bit_width // 8}")
    if pa.types.is_unsigned_integer(kind):
        return np.dtype(f"u{kind.bit_width // 8}")
    return None


def _null_mask(chunk: pa.Array) -> np.ndarray:
    """True where `chunk` is null, from its validity bitmap (numpy only)."""
    bits = np.frombuffer(chunk.buffers()[0], dtype=np.uint8)
    valid = np.unpackbits(bits, bitorder="little")[chunk.offset : chunk.offset + len(chunk)]
    return valid == 0


def _chunk_to_numpy(chunk: pa.Array) -> np.ndarray:
    """One chunk as numpy; nulls become NaN (integers with nulls become floats, as in pyarrow)."""
    dtype = _numpy_dtype(chunk.type)
    if dtype is None:
        return chunk.to_numpy(zero_copy_only=False)
    values = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
    if not chunk.null_count:
        return values
    values = values.astype(np.float64 if dtype.kind in "iu" else dtype)
    values[_null_mask(chunk)] = np.nan
    return values


def to_numpy(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numpy array of `values` (missing numbers as NaN) read from the Arrow buffers, without pandas.

    pyarrow's own ``to_numpy`` imports pandas (~50 MB of RSS) even for a zero-copy view (so does any
    conversion of Python or numpy values to Arrow: ``pa.scalar``, ``pa.array``, a Python fill value
    given to a compute function; the engine's column passes avoid them all). Numbers are
    viewed in place (read-only) when the column is one chunk without nulls; several chunks are copied
    once into one array. Types other than fixed-width numbers go through pyarrow's ``to_numpy``.
    """
    chunks = [values] if isinstance(values, pa.Array) else [chunk for chunk in values.chunks if len(chunk)]
    if not chunks:
        return np.empty(0, dtype=_numpy_dtype(values.type) or np.float64)
    if len(chunks) == 1:
        return _chunk_to_numpy(chunks[0])
    return np.concatenate([_chunk_to_numpy(chunk) for chunk in chunks])


def codes_to_numpy(indices: pa.Array, missing: int = -1) -> np.ndarray:
    """Dictionary indices (one chunk) as numpy integers, nulls as `missing`."""
    dtype = _numpy_dtype(indices.type)
    codes = np.frombuffer(indices.buffers()[1], dtype=dtype, count=len(indices), offset=indices.offset * dtype.itemsize)
    if indices.null_count:
        codes = codes.copy()
        codes[_null_mask(indices)] = missing
    return codes


def numerical_values(values: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Float64 values with missing ones as NaN, and how many values did not parse as numbers (type mismatches).

    Strings are parsed; a string that is not a number counts as a mismatch and becomes NaN; booleans
    become 0/1.
    """
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        present = values.drop_null()
        try:
            return to_numpy(pc.cast(values, pa.float64())), 0
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        trimmed = pc.utf8_trim_whitespace(values)
        numeric = pc.match_substring_regex(trimmed, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i)[+-]?(nan|inf)$")
        valid = pc.if_else(numeric, trimmed, pa.scalar(None, pa.string()))
        mismatches = len(present) - pc.sum(numeric).as_py()
        return to_numpy(pc.cast(valid, pa.float64())), int(mismatches)
    if pa.types.is_null(kind):
        return np.full(len(values), np.nan), 0
    if (
        pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
    ):
        values = pc.cast(values, pa.float64())
    else:
        return np.full(len(values), np.nan), len(values.drop_null())
    return to_numpy(values), 0
