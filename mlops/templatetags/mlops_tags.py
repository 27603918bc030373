from django import template
from django.utils.safestring import SafeString

from opsportal.portal.markdown import render

from ..models import ApprovalRequest

register = template.Library()

STAGE_BADGES = {
    "Production": "text-bg-success",
    "Staging": "text-bg-warning",
    "Archived": "text-bg-secondary",
    "None": "text-bg-light border",
}


@register.filter
def markdown(text: str) -> SafeString:
    """Render Markdown safely (raw HTML escaped, unsafe link schemes dropped)."""
    return render(text)


@register.filter
def stage_badge(stage: str) -> str:
    """Bootstrap classes for a stage's badge (colours with AA contrast)."""
    return STAGE_BADGES.get(stage, "text-bg-light border")


@register.filter
def web_url(url: object) -> str:
    """The URL when it may become a link (http or https only, never javascript: or data:), else ''."""
    if isinstance(url, str) and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return ""


@register.filter
def metric(value: object) -> str:
    """A metric for people: integers as they are, other numbers to 6 significant digits, none as '—'."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.6g}"


@register.filter
def signed(value: object) -> str:
    """A difference with its sign: +0.0123, -2, ±0."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    if value == 0:
        return "±0"
    return ("+" if value > 0 else "") + metric(value)


@register.simple_tag
def pending_approvals_count() -> int:
    return ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).count()
