"""Page actions as a table: action name → (form, service call, message), dispatched in one place.

A page's POST actions are declared as `PageAction`s in a dict; `dispatch()` checks the
role, binds the form, calls the service and maps a `ServiceError` the one way pages do:
onto the form field it names (the page is shown again with the error, status 400) or,
for an action without a form, as an error message after the redirect.

    ACTIONS = {
        "tag": PageAction(form=TagForm, prefix="tag",
                          run=lambda request, model, data: services.set_model_tag(model=model, actor=request.user,
                                                                                   **data),
                          success=lambda model, result, data: f"Tag {data['key']} set."),
    }

    def model_action(request, name, action):
        model = get_object_or_404(...)
        return dispatch(request, ACTIONS, action, model, invalid=lambda form: model_page(request, model, form))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from opsportal.accounts.roles import Role, require_role
from opsportal.errors import ServiceError

from .requests import form_problem, safe_next

Message = str | Callable[[Any, Any, dict], str] | None


@dataclass(frozen=True)
class PageAction:
    """One POST action of a page.

    - `run(request, obj, data)` calls the service; `data` is the form's cleaned data ({} without a form).
    - `form`/`prefix`: the form bound to the POST; without one the action takes no input beyond `run`'s own.
    - `success`: the message shown after it worked (text, or `(obj, result, data) -> text`).
    - `next`: where to go afterwards (`(obj, result) -> URL or model`); default: the POSTed `next` or the object.
    - `role`: a role needed beyond the view's own (`why` names the action in the refusal).
    - `fields`: service field name → form field name, where the two differ.
    """

    run: Callable[[HttpRequest, Any, dict], Any]
    form: type[forms.Form] | None = None
    prefix: str | None = None
    success: Message = None
    next: Callable[[Any, Any], Any] | None = None
    role: Role | None = None
    why: str = "This action"
    fields: Mapping[str, str] = field(default_factory=dict)


def add_service_error(form: forms.Form, exc: ServiceError, fields: Mapping[str, str] | None = None) -> None:
    """Put a service's refusal on the form field it names (or on the form as a whole)."""
    name = (fields or {}).get(exc.field, exc.field)
    if name in form.fields:
        form.add_error(name, exc.message)
    else:
        form.add_error(None, str(exc))


def apply_form(
    form: forms.Form, change: Callable[[dict], Any], fields: Mapping[str, str] | None = None
) -> tuple[bool, Any]:
    """Run `change(cleaned_data)` for a valid form: (True, its result), or (False, None) with the errors on the form."""
    if not form.is_valid():
        return False, None
    try:
        return True, change(form.cleaned_data)
    except ServiceError as exc:
        add_service_error(form, exc, fields)
        return False, None


def _text(message: Message, obj: Any, result: Any, data: dict) -> str | None:
    return message(obj, result, data) if callable(message) else message


def dispatch(
    request: HttpRequest,
    table: Mapping[str, PageAction],
    action: str,
    obj: Any,
    *,
    invalid: Callable[[forms.Form], HttpResponse] | None = None,
    default_next: Any = None,
) -> HttpResponse:
    """Run `table[action]` on `obj` for this POST and answer the redirect (or the page again, via `invalid`)."""
    spec = table.get(action)
    if spec is None:
        raise Http404(f"Unknown action {action!r}.")
    if spec.role is not None:
        require_role(request, spec.role, spec.why)
    fallback = default_next if default_next is not None else obj
    data: dict = {}
    form = None
    if spec.form is not None:
        form = spec.form(request.POST, prefix=spec.prefix)
        if not form.is_valid():
            return _refused(request, form, form_problem(form), invalid, fallback)
        data = form.cleaned_data
    try:
        result = spec.run(request, obj, data)
    except ServiceError as exc:
        if form is not None and invalid is not None:
            add_service_error(form, exc, spec.fields)
            return invalid(form)
        messages.error(request, str(exc))
        return redirect(safe_next(request, _url(fallback)))
    text = _text(spec.success, obj, result, data)
    if text:
        messages.success(request, text)
    if spec.next is not None:
        return redirect(spec.next(obj, result))
    return redirect(safe_next(request, _url(fallback)))


def _refused(
    request: HttpRequest,
    form: forms.Form,
    problem: str,
    invalid: Callable[[forms.Form], HttpResponse] | None,
    fallback: Any,
) -> HttpResponse:
    if invalid is not None:
        return invalid(form)
    messages.error(request, problem)
    return redirect(safe_next(request, _url(fallback)))


def _url(target: Any) -> str:
    return target.get_absolute_url() if hasattr(target, "get_absolute_url") else str(target)
