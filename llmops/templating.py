"""Prompt templates: `{{variable}}` placeholders rendered in Jinja2's sandbox.

The sandbox refuses access to unsafe attributes (no `__class__` escapes), undefined
variables are errors (StrictUndefined) so a dataset missing a variable fails loudly,
and autoescaping is off (prompts are text, not HTML).
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROLES = ("system", "user", "assistant")


class TemplateError(ValueError):
    def __init__(self, message: str, field: str = "messages") -> None:
        super().__init__(message)
        self.field = field


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=4096)
def _compile(source: str):
    return environment().from_string(source)


def validate_messages(messages: object) -> list[dict[str, str]]:
    """Check chat messages (role + content), compile each template; returns them cleaned."""
    if not isinstance(messages, list) or not messages:
        raise TemplateError("messages: give at least one message")
    cleaned = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise TemplateError(f"{field}: must be an object with role and content", field)
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise TemplateError(f"{field}.role: must be one of {', '.join(ROLES)}", f"{field}.role")
        if not isinstance(content, str) or not content.strip():
            raise TemplateError(f"{field}.content: required", f"{field}.content")
        try:
            environment().parse(content)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{field}.content: line {exc.lineno}: {exc.message}", f"{field}.content") from None
        cleaned.append({"role": role, "content": content})
    return cleaned


def variables_of(messages: list[dict[str, str]]) -> list[str]:
    """The placeholders the messages use, sorted."""
    names: set[str] = set()
    for message in messages:
        names |= meta.find_undeclared_variables(environment().parse(message["content"]))
    return sorted(names)


def render(messages: list[dict[str, str]], variables: dict) -> list[dict[str, str]]:
    """The messages with placeholders filled; raises TemplateError naming the missing variable."""
    rendered = []
    for index, message in enumerate(messages):
        try:
            content = _compile(message["content"]).render(**variables)
        except UndefinedError as exc:
            raise TemplateError(f"messages[{index}]: {exc.message}", "input") from None
        except SecurityError as exc:
            raise TemplateError(f"messages[{index}]: not allowed in a prompt template: {exc}", "input") from None
        rendered.append({"role": message["role"], "content": content})
    return rendered
