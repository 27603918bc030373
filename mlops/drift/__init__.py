"""The drift and data-quality engine: methods, Evidently's default selection, schema inference,
mergeable per-batch profiles, data quality, and the JSON/HTML report.

Pure computation on pyarrow tables and numpy arrays: no models, no database. The rest of MLOps
(monitors, batches, pages) builds on these entry points:

- `read_table(path)`: CSV or Parquet into a pyarrow Table (`DriftInputError` on bad input);
- `infer_schema(table)` / `apply_overrides(schema, {"col": "categorical"})`: column types and roles;
- `compare(reference, current, column_types=..., options=DriftOptions(...))`: a `DriftReport` with each
  column's method, statistic, p-value, threshold and verdict, and the dataset verdict;
- `ProfileSpec.from_reference(reference, schema)`, `spec.profile(batch)`, `merge_profiles([...])`,
  `window_drift(spec, merged, options)`: drift over any window of batches from merged profiles;
- `data_quality(spec, batch)`: missing share, new categories, out-of-range values, type mismatches;
- `report.to_json(...)` / `report.to_html(...)`: the documents of `manage.py drift_report`.
"""

from . import _memory  # noqa: F401 (Arrow's allocator settings: before the first import of pyarrow)
from .io import DriftInputError, read_table
from .methods import METHODS, MethodResult, get_method
from .schema import TYPES, ColumnSchema, apply_overrides, infer_schema
from .select import ColumnDrift, ColumnOptions, DriftOptions, DriftReport, compare

__all__ = [
    "METHODS",
    "TYPES",
    "ColumnDrift",
    "ColumnOptions",
    "ColumnSchema",
    "DriftInputError",
    "DriftOptions",
    "DriftReport",
    "MethodResult",
    "apply_overrides",
    "compare",
    "get_method",
    "infer_schema",
    "read_table",
]
