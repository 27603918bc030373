from django import template

from ..markdown import render

register = template.Library()


@register.filter
def markdown(text: str):
    """Render Markdown safely (raw HTML escaped, unsafe link schemes dropped)."""
    return render(text)
