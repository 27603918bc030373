"""Data quality of a batch against the reference, read off the batch's profile (no second pass over rows).

Per column: the missing share, new categories (values of a categorical/boolean column not in the
reference, with their counts), out-of-range values (numbers below the reference's minimum or above its
maximum) and type mismatches (values that do not parse as the column's type, e.g. a word in a
numerical column). Each is a count and a share of the batch's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from .profiles import BatchProfile, ProfileSpec


@dataclass
class ColumnQuality:
    """One column's data quality in one batch."""

    column: str
    type: str
    rows: int
    missing: int
    mismatches: int
    out_of_range: int
    new_categories: dict[str, int] = field(default_factory=dict)

    def share(self, count: int) -> float:
        return count / self.rows if self.rows else 0.0

    def to_dict(self) -> dict:
        return {
            "column": self.column,
            "type": self.type,
            "rows": self.rows,
            "missing": self.missing,
            "missing_share": self.share(self.missing),
            "type_mismatches": self.mismatches,
            "type_mismatch_share": self.share(self.mismatches),
            "out_of_range": self.out_of_range,
            "out_of_range_share": self.share(self.out_of_range),
            "new_categories": dict(sorted(self.new_categories.items(), key=lambda item: -item[1])),
            "new_category_share": self.share(sum(self.new_categories.values())),
        }


def profile_quality(spec: ProfileSpec, profile: BatchProfile) -> list[ColumnQuality]:
    """Every profiled column's quality in a batch (or a merged window) from its profile."""
    return [
        ColumnQuality(
            column=name,
            type=column.type,
            rows=profile.rows,
            missing=profile.columns[name].missing,
            mismatches=profile.columns[name].mismatches,
            out_of_range=profile.columns[name].out_of_range,
            new_categories=dict(profile.columns[name].new),
        )
        for name, column in spec.columns.items()
    ]


def data_quality(spec: ProfileSpec, batch: pa.Table) -> list[ColumnQuality]:
    """Every profiled column's quality in `batch` (profiles it first)."""
    return profile_quality(spec, spec.profile(batch))
