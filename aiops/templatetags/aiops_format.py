from django import template

register = template.Library()


@register.filter
def minutes(value: float | None) -> str:
    """12.5 -> '12.5 min', 135 -> '2.3 h', None -> '—'."""
    if value is None:
        return "—"
    if value >= 120:
        return f"{value / 60:.1f} h"
    return f"{value:.1f} min"
