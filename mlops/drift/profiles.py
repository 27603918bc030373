"""Mergeable per-batch column profiles, and drift over a window of batches computed from them.

A `ProfileSpec` is fixed once from the reference data: per numerical column the sketch's bin edges,
per categorical/boolean column the reference's categories. Every batch then leaves a `BatchProfile`:
per column the non-missing count, missing count, type mismatches, min/max, sum and sum of squares, and

- numerical: counts on the spec's edges, a quantile sketch: 256 equal-depth bins of the reference
  (its quantiles) cut further by 64 equal-width bins over its range, then 96 bins of geometrically
  growing width (10 % wider each) on either side, up to ~19 times the reference's range away, and two
  open-ended bins; plus the exact counts of up to 5 distinct values
  (for columns with few distinct values, where the selection picks a categorical method);
- categorical/boolean: counts per reference category, and per new category.

Profiles are JSON-serialisable (`to_dict` / `from_dict`) and merge by adding counts (`merge`, or
`merge_profiles` for many), so the profile of any window is the merge of its batches' profiles, and
`window_drift(spec, reference_profile, window_profile)` computes drift without re-reading rows.

Exact from profiles (same value as from the rows): ``chisquare``, ``chisquare_gof``, ``z`` and the
binned distances (``jensenshannon``, ``psi``, ``kl_div``, ``hellinger``) on categorical and boolean
columns and on numerical columns with at most 5 distinct values; the reference standard deviation.
Approximate (CDFs interpolated linearly inside each sketch bin): ``ks`` (statistic within about one
bin's share of the rows, i.e. ~1/256 for undrifted data), ``wasserstein``, ``energy``, and the binned
distances on numerical columns (Evidently's 30 equal bins re-cut from the sketch). Not available from
profiles (they need the rows): ``anderson``, ``cramer_von_mises``. tests/mlops/test_drift_profiles.py
measures the errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ._lazy import stats
from .methods import (
    EMPTY_SHARE,
    METHODS,
    MIN_STD,
    N_BINS,
    chisquare_from_counts,
    chisquare_gof_from_counts,
    jensenshannon_distance,
    kl_divergence,
    z_from_counts,
)
from .schema import DRIFT_TYPES, ColumnSchema, infer_schema, numerical_values
from .select import ColumnDrift, ColumnOptions, DriftOptions, DriftReport, default_method

SKETCH_BINS = 256
TAIL_BINS = 96
EVEN_BINS = 64
FEW_VALUES = 5
EXACT_FROM_PROFILES = frozenset({"chisquare", "chisquare_gof", "z"})
BINNED = frozenset({"jensenshannon", "psi", "kl_div", "hellinger"})
APPROXIMATE_FROM_PROFILES = frozenset({"ks", "wasserstein", "energy"})
NOT_FROM_PROFILES = frozenset({"anderson", "cramer_von_mises"})


def sketch_edges(values: np.ndarray) -> np.ndarray:
    """Bin edges for a numerical column: the reference's quantiles, then geometric tails on both sides."""
    if len(values) == 0:
        return np.array([0.0])
    core = np.unique(np.quantile(values, np.linspace(0, 1, SKETCH_BINS + 1)))
    low, high = float(core[0]), float(core[-1])
    span = (high - low) or max(abs(low), 1.0)
    offsets = span * 0.002 * (1.1 ** np.arange(1, TAIL_BINS + 1) - 1)
    # Equal-width edges too, so no bin is wider than 1/64 of the range (the quantile bins of a tail can be).
    even = np.linspace(low, high, EVEN_BINS + 1)
    return np.unique(np.concatenate([low - offsets[::-1], core, even, high + offsets]))


@dataclass
class ColumnSpec:
    """How one column is profiled: its type, and its sketch edges (numerical) or reference categories."""

    name: str
    type: str
    role: str = "feature"
    edges: np.ndarray | None = None
    categories: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "edges": None if self.edges is None else self.edges.tolist(),
            "categories": self.categories,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ColumnSpec:
        edges = data.get("edges")
        return cls(
            data["name"],
            data["type"],
            data.get("role", "feature"),
            None if edges is None else np.asarray(edges, dtype=float),
            list(data.get("categories") or []),
            data.get("minimum"),
            data.get("maximum"),
        )


@dataclass
class ColumnProfile:
    """One column of one batch (or of a merged window): counts that add up under `merge`."""

    type: str
    count: int = 0
    missing: int = 0
    mismatches: int = 0
    minimum: float | None = None
    maximum: float | None = None
    total: float = 0.0
    total_squares: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    new: dict[str, int] = field(default_factory=dict)
    few: dict[float, int] | None = field(default_factory=dict)
    out_of_range: int = 0

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both batches together."""
        few = None
        if self.few is not None and other.few is not None:
            few = dict(self.few)
            for value, n in other.few.items():
                few[value] = few.get(value, 0) + n
            if len(few) > FEW_VALUES:
                few = None
        new = dict(self.new)
        for name, n in other.new.items():
            new[name] = new.get(name, 0) + n
        minima = [v for v in (self.minimum, other.minimum) if v is not None]
        maxima = [v for v in (self.maximum, other.maximum) if v is not None]
        return ColumnProfile(
            type=self.type,
            count=self.count + other.count,
            missing=self.missing + other.missing,
            mismatches=self.mismatches + other.mismatches,
            minimum=min(minima) if minima else None,
            maximum=max(maxima) if maxima else None,
            total=self.total + other.total,
            total_squares=self.total_squares + other.total_squares,
            counts=self.counts + other.counts,
            new=new,
            few=few,
            out_of_range=self.out_of_range + other.out_of_range,
        )

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "count": self.count,
            "missing": self.missing,
            "mismatches": self.mismatches,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "total": self.total,
            "total_squares": self.total_squares,
            # Sketch counts are mostly zeros: stored as the length and the non-zero (index, count) pairs.
            "counts": {
                "length": len(self.counts),
                "index": np.flatnonzero(self.counts).tolist(),
                "count": self.counts[self.counts != 0].tolist(),
            },
            "new": self.new,
            "few": None if self.few is None else [[value, n] for value, n in self.few.items()],
            "out_of_range": self.out_of_range,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ColumnProfile:
        few = data.get("few")
        return cls(
            type=data["type"],
            count=data["count"],
            missing=data["missing"],
            mismatches=data.get("mismatches", 0),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            total=data.get("total", 0.0),
            total_squares=data.get("total_squares", 0.0),
            counts=_dense(data["counts"]),
            new=dict(data.get("new") or {}),
            few=None if few is None else {float(v): int(n) for v, n in few},
            out_of_range=data.get("out_of_range", 0),
        )


def _dense(counts: dict | list) -> np.ndarray:
    if isinstance(counts, list):
        return np.asarray(counts, dtype=np.int64)
    dense = np.zeros(counts["length"], dtype=np.int64)
    dense[np.asarray(counts["index"], dtype=np.int64)] = counts["count"]
    return dense


@dataclass
class BatchProfile:
    """Every profiled column of a batch (or window), and its row count."""

    rows: int
    columns: dict[str, ColumnProfile]

    def merge(self, other: BatchProfile) -> BatchProfile:
        if set(self.columns) != set(other.columns):
            raise ValueError("profiles of different columns cannot be merged")
        return BatchProfile(self.rows + other.rows, {n: p.merge(other.columns[n]) for n, p in self.columns.items()})

    def to_dict(self) -> dict:
        return {"rows": self.rows, "columns": {name: p.to_dict() for name, p in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> BatchProfile:
        return cls(data["rows"], {name: ColumnProfile.from_dict(p) for name, p in data["columns"].items()})


def merge_profiles(profiles: list[BatchProfile]) -> BatchProfile:
    """The profile of all `profiles` together (counts stacked and summed once per column)."""
    if not profiles:
        raise ValueError("no profiles to merge")
    first = profiles[0]
    columns = {}
    for name, head in first.columns.items():
        parts = [p.columns[name] for p in profiles]
        merged = ColumnProfile(type=head.type, few={} if all(p.few is not None for p in parts) else None)
        merged.count = sum(p.count for p in parts)
        merged.missing = sum(p.missing for p in parts)
        merged.mismatches = sum(p.mismatches for p in parts)
        merged.out_of_range = sum(p.out_of_range for p in parts)
        merged.total = float(sum(p.total for p in parts))
        merged.total_squares = float(sum(p.total_squares for p in parts))
        minima = [p.minimum for p in parts if p.minimum is not None]
        maxima = [p.maximum for p in parts if p.maximum is not None]
        merged.minimum, merged.maximum = (min(minima) if minima else None), (max(maxima) if maxima else None)
        merged.counts = np.sum([p.counts for p in parts], axis=0) if len(head.counts) else head.counts.copy()
        for p in parts:
            for key, n in p.new.items():
                merged.new[key] = merged.new.get(key, 0) + n
            if merged.few is not None:
                for value, n in p.few.items():
                    merged.few[value] = merged.few.get(value, 0) + n
                if len(merged.few) > FEW_VALUES:
                    merged.few = None
        columns[name] = merged
    return BatchProfile(sum(p.rows for p in profiles), columns)


@dataclass
class ProfileSpec:
    """The per-column profiling plan fixed from the reference data (JSON-serialisable)."""

    columns: dict[str, ColumnSpec]

    @classmethod
    def from_reference(cls, reference: pa.Table, schema: dict[str, ColumnSchema] | None = None) -> ProfileSpec:
        schema = schema or infer_schema(reference)
        columns = {}
        for name in reference.column_names:
            column = schema[name]
            if column.type not in DRIFT_TYPES:
                continue
            if column.type == "numerical":
                values, _ = numerical_values(reference.column(name))
                values = values[~np.isnan(values)]
                columns[name] = ColumnSpec(
                    name,
                    column.type,
                    column.role,
                    edges=sketch_edges(values),
                    minimum=float(values.min()) if len(values) else None,
                    maximum=float(values.max()) if len(values) else None,
                )
            else:
                counts = _string_counts(reference.column(name))
                columns[name] = ColumnSpec(name, column.type, column.role, categories=sorted(counts))
        return cls(columns)

    def to_dict(self) -> dict:
        return {"columns": [c.to_dict() for c in self.columns.values()]}

    @classmethod
    def from_dict(cls, data: dict) -> ProfileSpec:
        return cls({c["name"]: ColumnSpec.from_dict(c) for c in data["columns"]})

    def profile(self, batch: pa.Table) -> BatchProfile:
        """The profile of one batch; ValueError naming the profiled columns the batch lacks."""
        missing = [name for name in self.columns if name not in batch.column_names]
        if missing:
            raise ValueError(f"batch lacks column(s): {', '.join(missing)}")
        return BatchProfile(
            batch.num_rows, {name: profile_column(spec, batch.column(name)) for name, spec in self.columns.items()}
        )


def _string_counts(values: pa.ChunkedArray) -> dict[str, int]:
    counts = values.cast(pa.string()).value_counts()
    return {
        v.as_py(): n.as_py() for v, n in zip(counts.field("values"), counts.field("counts"), strict=True) if v.is_valid
    }


def profile_column(spec: ColumnSpec, values: pa.ChunkedArray) -> ColumnProfile:
    """One column's profile against its spec."""
    if spec.type == "numerical":
        numbers, mismatches = numerical_values(values)
        present = numbers[~np.isnan(numbers)]
        counts = np.bincount(np.searchsorted(spec.edges, present, side="right"), minlength=len(spec.edges) + 1)
        distinct = np.unique(present[: 10 * FEW_VALUES])
        few = None
        if len(distinct) <= FEW_VALUES:
            distinct, distinct_counts = np.unique(present, return_counts=True)
            if len(distinct) <= FEW_VALUES:
                few = {float(v): int(n) for v, n in zip(distinct, distinct_counts, strict=True)}
        out = 0
        if spec.minimum is not None and len(present):
            out = int(np.count_nonzero((present < spec.minimum) | (present > spec.maximum)))
        return ColumnProfile(
            type=spec.type,
            count=len(present),
            missing=len(numbers) - len(present) - mismatches,
            mismatches=mismatches,
            minimum=float(present.min()) if len(present) else None,
            maximum=float(present.max()) if len(present) else None,
            total=float(present.sum()),
            total_squares=float(np.dot(present, present)),
            counts=counts.astype(np.int64),
            few=few,
            out_of_range=out,
        )
    counts = _string_counts(values)
    known = {name: i for i, name in enumerate(spec.categories)}
    vector = np.zeros(len(spec.categories), dtype=np.int64)
    new = {}
    for name, n in counts.items():
        if name in known:
            vector[known[name]] = n
        else:
            new[name] = n
    present = int(sum(counts.values()))
    return ColumnProfile(type=spec.type, count=present, missing=len(values) - present, counts=vector, new=new, few=None)


# --- drift from profiles -----------------------------------------------------------------------------------


def _category_counts(reference: ColumnProfile, current: ColumnProfile) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(set(reference.new) | set(current.new))
    ref = np.concatenate([reference.counts, [reference.new.get(n, 0) for n in names]]).astype(np.int64)
    cur = np.concatenate([current.counts, [current.new.get(n, 0) for n in names]]).astype(np.int64)
    return ref, cur


def _few_counts(reference: ColumnProfile, current: ColumnProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.array(sorted(set(reference.few) | set(current.few)))
    ref = np.array([reference.few.get(v, 0) for v in values], dtype=np.int64)
    cur = np.array([current.few.get(v, 0) for v in values], dtype=np.int64)
    return values, ref, cur


def _cdfs(spec: ColumnSpec, reference: ColumnProfile, current: ColumnProfile) -> tuple[np.ndarray, ...]:
    """A common grid and both CDFs on it, linear inside each bin (open bins closed at the samples' min/max)."""
    low = min(v for v in (reference.minimum, current.minimum, spec.edges[0]) if v is not None)
    high = max(v for v in (reference.maximum, current.maximum, spec.edges[-1]) if v is not None)
    grid = np.concatenate([[low], spec.edges, [high]])
    ref = np.concatenate([[0], np.cumsum(reference.counts)]) / max(reference.count, 1)
    cur = np.concatenate([[0], np.cumsum(current.counts)]) / max(current.count, 1)
    return grid, ref, cur


def _binned_from_cdf(grid: np.ndarray, ref: np.ndarray, cur: np.ndarray, low: float, high: float) -> tuple:
    edges = np.linspace(low, high, N_BINS + 1)
    return np.diff(np.interp(edges, grid, ref)), np.diff(np.interp(edges, grid, cur))


def _binned_distance(name: str, p: np.ndarray, q: np.ndarray) -> float:
    if name == "hellinger":
        return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2))
    p, q = np.where(p <= 0, EMPTY_SHARE, p), np.where(q <= 0, EMPTY_SHARE, q)
    if name == "jensenshannon":
        return jensenshannon_distance(p, q)
    if name == "kl_div":
        return kl_divergence(p, q)
    return float(np.sum((p - q) * np.log(p / q)))


def _abs_area(d0: np.ndarray, d1: np.ndarray, width: np.ndarray) -> float:
    """Integral of |d| over segments where d goes linearly from d0 to d1."""
    same = d0 * d1 >= 0
    area_same = width * (np.abs(d0) + np.abs(d1)) / 2
    denominator = np.where(same, 1.0, np.abs(d0) + np.abs(d1))
    area_cross = width * (d0**2 + d1**2) / (2 * denominator)
    return float(np.sum(np.where(same, area_same, area_cross)))


def profile_statistic(
    method: str, spec: ColumnSpec, reference: ColumnProfile, current: ColumnProfile, as_numbers: bool
) -> tuple[float, float | None]:
    """A method's statistic and p-value from two profiles of one column (see the module docstring)."""
    if method in NOT_FROM_PROFILES:
        usable = ", ".join(sorted(EXACT_FROM_PROFILES | BINNED | APPROXIMATE_FROM_PROFILES))
        raise ValueError(f"column {spec.name!r}: {method!r} needs the rows; from profiles use {usable}")
    few = spec.type == "numerical" and reference.few is not None and current.few is not None
    if spec.type != "numerical" or (few and not as_numbers) or (few and method in BINNED):
        if spec.type == "numerical":
            values, ref, cur = _few_counts(reference, current)
        else:
            ref, cur = _category_counts(reference, current)
            values = None
        if method == "chisquare":
            return chisquare_from_counts(ref, cur)
        if method == "chisquare_gof":
            return chisquare_gof_from_counts(ref, cur)
        if method == "z":
            if np.count_nonzero(ref + cur) > 2:
                raise ValueError(f"column {spec.name!r}: z takes a binary column")
            first = int(np.flatnonzero(ref + cur)[0]) if np.any(ref + cur) else 0
            return z_from_counts(int(ref[first]), int(ref.sum()), int(cur[first]), int(cur.sum()))
        if method in BINNED:
            if values is not None and as_numbers:
                edges = np.histogram_bin_edges(values, bins=N_BINS)
                ref = np.histogram(values, edges, weights=ref)[0]
                cur = np.histogram(values, edges, weights=cur)[0]
            return _binned_distance(method, ref / ref.sum(), cur / cur.sum()), None
        raise ValueError(f"column {spec.name!r}: {method!r} does not take {spec.type} columns")
    grid, ref, cur = _cdfs(spec, reference, current)
    d = ref - cur
    width = np.diff(grid)
    if method == "ks":
        statistic = float(np.max(np.abs(d)))
        n, m = reference.count, current.count
        return statistic, float(stats.kstwo.sf(statistic, round(n * m / (n + m))))
    if method == "wasserstein":
        mean = reference.total / reference.count
        std = max(np.sqrt(max(reference.total_squares / reference.count - mean**2, 0.0)), MIN_STD)
        return _abs_area(d[:-1], d[1:], width) / std, None
    if method == "energy":
        d0, d1 = d[:-1], d[1:]
        return float(np.sqrt(2 * np.sum(width * (d0**2 + d0 * d1 + d1**2) / 3))), None
    if method in BINNED:
        low = min(reference.minimum, current.minimum)
        high = max(reference.maximum, current.maximum)
        p, q = _binned_from_cdf(grid, ref, cur, low, high)
        return _binned_distance(method, p, q), None
    raise ValueError(f"column {spec.name!r}: {method!r} does not take numerical columns")


def window_drift(
    spec: ProfileSpec, reference: BatchProfile, current: BatchProfile, options: DriftOptions | None = None
) -> DriftReport:
    """Drift of a window (merged batch profiles) against the reference's profile, with the default selection."""
    options = options or DriftOptions()
    columns: list[ColumnDrift] = []
    skipped: dict[str, str] = {}
    for name, column_spec in spec.columns.items():
        ref, cur = reference.columns[name], current.columns[name]
        expected = len(column_spec.edges) + 1 if column_spec.edges is not None else len(column_spec.categories)
        if len(ref.counts) != expected or len(cur.counts) != expected:
            raise ValueError(f"column {name!r}: the profiles were not made with this spec")
        if ref.count == 0 or cur.count == 0:
            skipped[name] = (
                f"column {name!r}: no non-missing values in the {'reference' if ref.count == 0 else 'current'} data"
            )
            continue
        chosen: ColumnOptions = options.for_column(name)
        numerical = column_spec.type == "numerical"
        if numerical:
            distinct = (
                len(set(ref.few) | set(cur.few)) if ref.few is not None and cur.few is not None else FEW_VALUES + 1
            )
        else:
            distinct = int(np.count_nonzero(ref.counts + cur.counts)) + len(set(ref.new) | set(cur.new))
        method = (
            METHODS[chosen.method]
            if chosen.method in METHODS
            else default_method(column_spec.type, ref.count, distinct)
        )
        if chosen.method and chosen.method not in METHODS:
            from .methods import get_method

            method = get_method(chosen.method)
        as_numbers = numerical and "numerical" in method.kinds and method.name not in EXACT_FROM_PROFILES
        statistic, p_value = profile_statistic(method.name, column_spec, ref, cur, as_numbers)
        threshold = method.default_threshold if chosen.threshold is None else chosen.threshold
        drifted = (p_value < threshold) if method.kind == "test" else (statistic >= threshold)
        columns.append(
            ColumnDrift(
                column=name,
                type=column_spec.type,
                method=method.name,
                statistic=float(statistic),
                p_value=p_value,
                threshold=threshold,
                drifted=bool(drifted),
                reference_count=ref.count,
                current_count=cur.count,
                reference_missing=ref.missing,
                current_missing=cur.missing,
                role=column_spec.role,
            )
        )
    schema = {name: ColumnSchema(name, c.type, c.role) for name, c in spec.columns.items()}
    return DriftReport(columns, skipped, options.drift_share, schema, reference.rows, current.rows)
