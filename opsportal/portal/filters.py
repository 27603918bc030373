"""Honest list filters: a filter value a page does not know is reported, never an empty list.

Every list page of the portal reads its filters from the query string through :func:`checked_filters`: the
value ``all`` of a choice filter means no filter, and a value the filter does not accept (an unknown status, a
date that does not parse, a dataset that does not exist) is dropped with a message that names the filter and
its allowed values, so the page shows what it would without that filter and says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django import forms
from django.http import QueryDict

ALL = "all"
NULL_BOOLEAN_VALUES = {"", "true", "false", "1", "0", "yes", "no", "on", "off", "unknown", "none", "null"}
LISTED_CHOICES = 12  # a longer list of allowed values is cut with "…"


def checked_filters(
    data: QueryDict,
    fields: Mapping[str, forms.Field],
    bind: Callable[[QueryDict], forms.BaseForm] | None = None,
) -> tuple[QueryDict, list[str]]:
    """The query without the filter values that would hide everything, and a message for each one dropped.

    ``fields`` are the filter form's fields (``FilterSet().form.fields`` or ``SomeForm().fields``); ``bind``,
    when given, binds the form to the cleaned query so that errors of other fields (dates, numbers, choices
    from the database) are found and their filters dropped too.
    """
    data = data.copy()
    problems: list[str] = []
    for name, field in fields.items():
        if name not in data:
            continue
        values = data.getlist(name)
        if isinstance(field, forms.ModelChoiceField):
            kept = [] if any(v.strip().lower() == ALL for v in values) else values
        elif isinstance(field, forms.ChoiceField):
            kept = _known_choices(name, field, values, problems)
        elif isinstance(field, forms.NullBooleanField):
            kept = [] if any(v.strip().lower() == ALL for v in values) else values
            if any(v.strip().lower() not in NULL_BOOLEAN_VALUES for v in kept):
                problems.append(
                    _message(name, kept, "not a value it knows; the allowed values are true, false (or all)")
                )
                kept = []
        else:
            continue
        if kept:
            data.setlist(name, kept)
        else:
            data.pop(name)
    if bind is not None:
        form = bind(data)
        if not form.is_valid():
            for name, errors in form.errors.items():
                if name in data:
                    problems.append(_message(name, data.getlist(name), " ".join(errors)))
                    data.pop(name)
    return data, problems


def _known_choices(name: str, field: forms.ChoiceField, values: list[str], problems: list[str]) -> list[str]:
    """The values that are choices of ``field``; ``all`` clears the filter, an unknown value is reported."""
    allowed = [str(key) for key, _label in _flat_choices(field.choices) if str(key) != ""]
    if any(v.strip().lower() == ALL for v in values) and ALL not in allowed:
        return []
    unknown = [v for v in values if v not in allowed and v != ""]
    if not unknown:
        return values
    listed = ", ".join(allowed[:LISTED_CHOICES]) + (", …" if len(allowed) > LISTED_CHOICES else "")
    problems.append(
        _message(name, unknown, f"not a value it knows; the allowed values are {listed or 'none yet'} (or all)")
    )
    return [v for v in values if v in allowed]


def _flat_choices(choices) -> list[tuple[object, object]]:
    flat: list[tuple[object, object]] = []
    for key, label in choices:
        if isinstance(label, list | tuple):
            flat.extend(label)
        else:
            flat.append((key, label))
    return flat


def _message(name: str, values: list[str], why: str) -> str:
    """Names the filter as the query string does (what the user typed or followed), its values and why."""
    shown = ", ".join(f"“{value[:60]}”" for value in values)
    return f"Filter {name}: {shown} — {why.rstrip('.')}. The list is shown without this filter."
