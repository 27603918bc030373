"""Filters every app's API and pages share: date and time parameters that always reach the database whole.

Python parses ISO 8601 times with an offset of up to ±23:59 and years 1 to 9999; PostgreSQL refuses
offsets beyond ±15:59 (`DataError`) and a time near year 1 or 9999 may not exist in UTC at all. A
`since`/`until` parameter is therefore normalised to UTC here, and one that cannot be represented is
a 400 naming the parameter, never a server error.
"""

from __future__ import annotations

import datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


def representable(value: datetime.datetime) -> datetime.datetime:
    """`value` in UTC; a `ValidationError` when it has no UTC equivalent (a time zone offset near year 1 or 9999)."""
    try:
        return value.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        raise ValidationError(
            "%(value)s cannot be represented in UTC (it falls before year 1 or after year 9999).",
            code="out_of_range",
            params={"value": value.isoformat()},
        ) from None


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date and time (`2026-05-01T12:00:00Z`, any offset), answered in UTC."""

    default_error_messages = {"invalid": "Enter an ISO 8601 date and time, such as 2026-05-01T12:00:00Z."}

    def to_python(self, value: Any) -> datetime.datetime | None:
        try:
            parsed = super().to_python(value)
        except (OverflowError, ValueError):
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        return None if parsed is None else representable(parsed)


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """A date-time filter (`since`, `until`, ...) whose value is checked and made UTC before it reaches a query."""

    field_class = UtcIsoDateTimeField
