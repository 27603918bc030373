"""Formatting for the LLMOps pages: rates, money, latency, run status, and prompt templates with their
placeholders highlighted."""

from __future__ import annotations

import json
import re

from django import template
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

STATUS_BADGES = {
    "queued": "text-bg-secondary",
    "running": "text-bg-primary",
    "completed": "text-bg-success",
    "failed": "text-bg-danger",
    "cancelled": "text-bg-warning",
}
# {{ variable }} placeholders and {% ... %} blocks of a Jinja2 prompt template.
PLACEHOLDER = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.S)


@register.filter
def percent(value: object, digits: int = 1) -> str:
    """0.875 -> '87.5%'; None -> '—'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value * 100:.{int(digits)}f}%"


@register.filter
def percent_int(value: object) -> int:
    """0.875 -> 88, for progress bars' widths and aria values."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, min(100, round(value * 100)))


@register.filter
def usd(value: object) -> str:
    """Money at a precision that still shows small amounts: $12.35, $0.0042, $0.000012; None -> '—'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= 0.01:
        return f"${value:.4f}"
    return f"${value:.2g}" if abs(value) < 1e-6 else f"${value:.6f}".rstrip("0")


@register.filter
def price(value: object) -> str:
    """A price per 1M tokens: trailing zeros dropped (2.5000 -> 2.5)."""
    if value is None:
        return "—"
    text = f"{value:f}" if not isinstance(value, str) else value
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def ms(value: object) -> str:
    """Latency: 850 -> '850 ms', 2400 -> '2.4 s'; None -> '—'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.0f} s"
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


@register.filter
def score(value: object) -> str:
    """A score from 0 to 1 with two decimals; None -> '—'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.2f}"


@register.filter
def status_badge(status: str) -> str:
    """Bootstrap classes for a run status's badge."""
    return STATUS_BADGES.get(status, "text-bg-light border")


@register.filter
def template_html(content: str) -> SafeString:
    """A prompt template, escaped, with its {{ placeholders }} and {% blocks %} marked."""
    parts = PLACEHOLDER.split(content or "")
    html = []
    for index, part in enumerate(parts):
        if index % 2:
            html.append(format_html('<mark class="tpl-var">{}</mark>', part))
        else:
            html.append(escape(part))
    return mark_safe("".join(html))  # noqa: S308 - every part was escaped above


@register.filter
def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def get_item(mapping: object, key: object) -> object:
    """dict[key] in a template: {{ stats|get_item:name }}."""
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def variable_text(value: object) -> str:
    """An input variable as shown in tables: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _seconds_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def run_elapsed(run) -> str:
    """How long a run has been working (or worked): '42 s', '3 min 5 s'; '—' before it started."""
    if run.started_at is None:
        return "—"
    end = run.finished_at or timezone.now()
    return _seconds_text((end - run.started_at).total_seconds())


@register.filter
def run_eta(run) -> str:
    """The time left at the current pace, for a running run with some results; '' otherwise."""
    if run.finished or run.started_at is None or not run.done or run.done >= run.total:
        return ""
    elapsed = (timezone.now() - run.started_at).total_seconds()
    return _seconds_text(elapsed / run.done * (run.total - run.done))


@register.filter
def failed_count(run) -> int:
    """Results scored as failed (not errors)."""
    return max(0, run.done - run.errors - run.passed)
