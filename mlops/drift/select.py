"""Evidently's default method selection, per-column overrides, and the dataset verdict.

Defaults (Evidently's ``get_stattest``), with ``n`` the reference's non-missing rows and ``k`` the
number of distinct values in reference and current together:

========================  ==================================  =====================================
column                    n <= 1,000 (p-value < 0.05)          n > 1,000 (distance >= 0.1)
========================  ==================================  =====================================
numerical, k > 5          ``ks``                               ``wasserstein`` (normed)
numerical, 2 < k <= 5     ``chisquare``                        ``jensenshannon``
numerical, k <= 2         ``z``                                ``jensenshannon``
categorical, k > 2        ``chisquare``                        ``jensenshannon``
categorical/boolean k<=2  ``z``                                ``jensenshannon``
========================  ==================================  =====================================

The dataset drifts when at least ``drift_share`` (0.5) of the compared columns drift. Every column's
method and threshold can be set (`ColumnOptions`); a method for all columns and a threshold for all
columns can be set too (``DriftOptions.method`` / ``.threshold``), a column's own setting winning.

Usage::

    from mlops.drift import compare, read_table

    report = compare(read_table("ref.csv"), read_table("cur.csv"))
    report.dataset_drift, report.to_dict()["columns"]
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .io import DriftInputError
from .methods import METHODS, Method, get_method
from .schema import DRIFT_TYPES, ColumnSchema, apply_overrides, codes_to_numpy, infer_schema, numerical_values, to_numpy

SMALL_REFERENCE = 1000
DRIFT_SHARE = 0.5


class EmptyColumnError(ValueError):
    """A column with no non-missing value on one side: listed as skipped, not compared."""


@dataclass(frozen=True)
class ColumnOptions:
    """A column's chosen method (a name from methods.METHODS) and threshold; None keeps the default."""

    method: str | None = None
    threshold: float | None = None


@dataclass
class DriftOptions:
    """Settings of a comparison: per-column options, options for every column, the dataset drift share."""

    columns: dict[str, ColumnOptions] = field(default_factory=dict)
    method: str | None = None
    threshold: float | None = None
    drift_share: float = DRIFT_SHARE

    def for_column(self, name: str) -> ColumnOptions:
        own = self.columns.get(name, ColumnOptions())
        return ColumnOptions(own.method or self.method, own.threshold if own.threshold is not None else self.threshold)


@dataclass
class ColumnDrift:
    """One column's drift: type, method, statistic, p-value (tests) or None (distances), threshold, verdict."""

    column: str
    type: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference_count: int
    current_count: int
    reference_missing: int
    current_missing: int
    role: str = "feature"

    def to_dict(self) -> dict:
        return {
            "column": self.column,
            "type": self.type,
            "role": self.role,
            "method": self.method,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "reference_missing": self.reference_missing,
            "current_missing": self.current_missing,
        }


def _finite(value: float | None) -> float | None:
    """JSON has no inf/NaN: an infinite statistic is written as a very large number, NaN as null."""
    if value is None or np.isnan(value):
        return None
    if np.isinf(value):
        return float(np.sign(value) * 1e308)
    return value


@dataclass
class DriftReport:
    """The result of a comparison: every compared column, the skipped ones and why, the dataset verdict."""

    columns: list[ColumnDrift]
    skipped: dict[str, str]
    drift_share_threshold: float
    schema: dict[str, ColumnSchema]
    reference_rows: int
    current_rows: int

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.drift_share >= self.drift_share_threshold

    def to_dict(self) -> dict:
        """The document of the `drift_report` command (docs: CONTRACT "Drift and monitoring")."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "number_of_columns": len(self.columns),
            "number_of_drifted_columns": len(self.drifted_columns),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [c.to_dict() for c in self.columns],
            "skipped": [{"column": name, "reason": why} for name, why in self.skipped.items()],
        }


def default_method(column_type: str, reference_count: int, distinct: int) -> Method:
    """Evidently's choice for a column (the table in the module docstring)."""
    small = reference_count <= SMALL_REFERENCE
    if column_type == "numerical":
        if small:
            return METHODS["ks" if distinct > 5 else "chisquare" if distinct > 2 else "z"]
        return METHODS["wasserstein" if distinct > 5 else "jensenshannon"]
    if small:
        return METHODS["chisquare" if distinct > 2 else "z"]
    return METHODS["jensenshannon"]


def encode_categories(reference: pa.ChunkedArray, current: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, list]:
    """Codes of both columns over one dictionary (missing: -1) and the dictionary's values."""
    both = pa.chunked_array(
        [chunk.cast(pa.string()) for chunk in reference.chunks + current.chunks] or [pa.array([], pa.string())],
        type=pa.string(),
    )
    encoded = pc.dictionary_encode(both).combine_chunks()
    codes = codes_to_numpy(encoded.indices)
    return codes[: len(reference)], codes[len(reference) :], encoded.dictionary.to_pylist()


def column_values(
    column_type: str, reference: pa.ChunkedArray, current: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray, int, int, bool]:
    """Non-missing values of both sides as numpy arrays, missing counts, and whether they are numbers.

    Numerical: float64 (values that are not numbers count as missing; quality.py reports them).
    Categorical and boolean: int codes over the categories of both sides.
    """
    if column_type == "numerical":
        ref, ref_missing = _present(numerical_values(reference)[0])
        cur, cur_missing = _present(numerical_values(current)[0])
        return ref, cur, ref_missing, cur_missing, True
    ref_codes, cur_codes, _ = encode_categories(reference, current)
    ref_codes, cur_codes = ref_codes[ref_codes >= 0], cur_codes[cur_codes >= 0]
    return ref_codes, cur_codes, len(reference) - len(ref_codes), len(current) - len(cur_codes), False


def _present(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The values that are not NaN (the same array when none is) and how many were NaN."""
    missing = np.isnan(values)
    count = int(np.count_nonzero(missing))
    return (values[~missing] if count else values), count


def _distinct(reference: np.ndarray, current: np.ndarray, cap: int = 6) -> int:
    """Distinct numbers of both sides, counted up to `cap` only (enough for the selection)."""
    seen: set = set()
    for values in (reference, current):
        head = values[:10_000]
        seen.update(np.unique(head)[:cap].tolist())
        if len(seen) >= cap:
            return len(seen)
        if len(values) > len(head):
            seen.update(np.unique(values)[:cap].tolist())
            if len(seen) >= cap:
                return len(seen)
    return len(seen)


def _value_counts(values: pa.ChunkedArray) -> tuple[list, np.ndarray]:
    """A column's categories (as strings, in order of first appearance) and their counts; missing ones left out."""
    if len(values) == 0:
        return [], np.zeros(0, dtype=np.int64)
    strings = values if pa.types.is_string(values.type) else values.cast(pa.string())
    counted = pc.value_counts(strings)
    labels = counted.field("values").to_pylist()
    counts = to_numpy(counted.field("counts")).astype(np.int64)
    if None in labels:
        keep = [i for i, label in enumerate(labels) if label is not None]
        labels, counts = [labels[i] for i in keep], counts[keep]
    return labels, counts


def category_counts(reference: pa.ChunkedArray, current: pa.ChunkedArray) -> tuple[list, np.ndarray, np.ndarray]:
    """The categories of both columns and each side's count per category (missing values not counted).

    The categories come in order of first appearance, the reference's first, then the new ones of the
    current data: the order of `encode_categories`'s codes. Counted by Arrow's hash kernel, so no
    per-row array is made.
    """
    reference_labels, reference_counts = _value_counts(reference)
    current_labels, current_counts = _value_counts(current)
    index = {label: i for i, label in enumerate(reference_labels)}
    categories = list(reference_labels)
    for label in current_labels:
        if label not in index:
            index[label] = len(categories)
            categories.append(label)
    ref = np.zeros(len(categories), dtype=np.int64)
    ref[: len(reference_labels)] = reference_counts
    cur = np.zeros(len(categories), dtype=np.int64)
    cur[[index[label] for label in current_labels]] = current_counts
    return categories, ref, cur


def number_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per distinct number of both samples, over the sorted distinct values of both."""
    reference_values, reference_counts = np.unique(reference, return_counts=True)
    current_values, current_counts = np.unique(current, return_counts=True)
    values = np.union1d(reference_values, current_values)
    ref = np.zeros(len(values), dtype=np.int64)
    ref[np.searchsorted(values, reference_values)] = reference_counts
    cur = np.zeros(len(values), dtype=np.int64)
    cur[np.searchsorted(values, current_values)] = current_counts
    return ref, cur


def compare_column(
    schema: ColumnSchema, reference: pa.ChunkedArray, current: pa.ChunkedArray, options: ColumnOptions
) -> ColumnDrift:
    """One column's drift with its default or chosen method; ValueError if the method does not fit the column.

    Numerical columns become float64 arrays of their non-missing values (views of the Arrow buffers
    when nothing is missing); categorical and boolean ones are only counted per category.
    """
    numerical = schema.type == "numerical"
    if numerical:
        ref, ref_missing = _present(numerical_values(reference)[0])
        cur, cur_missing = _present(numerical_values(current)[0])
        ref_n, cur_n = len(ref), len(cur)
    else:
        categories, ref_counts, cur_counts = category_counts(reference, current)
        ref_n, cur_n = int(ref_counts.sum()), int(cur_counts.sum())
        ref_missing, cur_missing = len(reference) - ref_n, len(current) - cur_n
    if ref_n == 0 or cur_n == 0:
        side = "reference" if ref_n == 0 else "current"
        raise EmptyColumnError(f"column {schema.name!r}: no non-missing values in the {side} data")
    distinct = _distinct(ref, cur) if numerical else len(categories)
    if options.method:
        method = get_method(options.method)
        # Categorical methods also take numbers (as categories, as Evidently allows); not the other way.
        if not numerical and schema.type not in method.kinds:
            raise ValueError(
                f"column {schema.name!r} ({schema.type}): method {method.name!r} "
                f"takes {', '.join(sorted(method.kinds))} columns"
            )
    else:
        method = default_method(schema.type, ref_n, distinct)
    # Numbers with few distinct values are compared as categories (Evidently does the same).
    as_numbers = numerical and "numerical" in method.kinds and method.name not in {"chisquare", "chisquare_gof", "z"}
    if as_numbers:
        result = method(ref, cur, options.threshold, numerical=True)
    else:
        if numerical:
            ref_counts, cur_counts = number_counts(ref, cur)
        result = method.from_counts(ref_counts, cur_counts, options.threshold)
    return ColumnDrift(
        column=schema.name,
        type=schema.type,
        method=method.name,
        statistic=result.statistic,
        p_value=result.p_value,
        threshold=result.threshold,
        drifted=result.drifted,
        reference_count=ref_n,
        current_count=cur_n,
        reference_missing=ref_missing,
        current_missing=cur_missing,
        role=schema.role,
    )


def compare(
    reference: pa.Table,
    current: pa.Table,
    *,
    column_types: dict[str, str] | None = None,
    options: DriftOptions | None = None,
    schema: dict[str, ColumnSchema] | None = None,
) -> DriftReport:
    """Drift of every numerical, categorical and boolean column of `current` against `reference`.

    The schema is inferred from the reference unless given; `column_types` overrides types. Raises
    DriftInputError for columns missing on one side, ValueError for a bad override or method.
    """
    options = options or DriftOptions()
    missing = [c for c in reference.column_names if c not in current.column_names]
    extra = [c for c in current.column_names if c not in reference.column_names]
    if missing or extra:
        raise DriftInputError(
            "columns differ: "
            + "; ".join(
                part
                for part in (
                    f"missing from the current data: {', '.join(missing)}" if missing else "",
                    f"not in the reference data: {', '.join(extra)}" if extra else "",
                )
                if part
            )
        )
    schema = apply_overrides(schema or infer_schema(reference), column_types or {})
    unknown = [name for name in options.columns if name not in schema]
    if unknown:
        raise ValueError(f"unknown column(s) in the method options: {', '.join(unknown)}")
    skipped: dict[str, str] = {}
    names = []
    for name in reference.column_names:
        if schema[name].type in DRIFT_TYPES:
            names.append(name)
        else:
            skipped[name] = f"{schema[name].type} column: no drift method"

    def one(name: str) -> ColumnDrift | str:
        try:
            return compare_column(schema[name], reference.column(name), current.column(name), options.for_column(name))
        except EmptyColumnError as error:
            return str(error)

    # numpy's sorts and pyarrow's kernels release the GIL: columns run side by side on every core.
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1) or 1) as pool:
        outcomes = list(pool.map(one, names))
    columns = []
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, str):
            skipped[name] = outcome
        else:
            columns.append(outcome)
    return DriftReport(columns, skipped, options.drift_share, schema, reference.num_rows, current.num_rows)
