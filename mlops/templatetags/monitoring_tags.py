"""Template filters of the Monitoring tab and the batch report."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def share(value: object) -> str:
    """A share of rows for people: 0.1234 -> '12.3%', 0 -> '0%', a tiny share -> '<0.1%', none -> '—'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if value == 0:
        return "0%"
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{value * 100:.1f}%"


@register.filter
def number(value: object) -> str:
    """A statistic, p-value or threshold to 4 significant digits; none as '—'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.4g}"
