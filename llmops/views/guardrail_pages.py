"""Guardrail pages: the policies with their violation rates, one policy (its checks edited as a form, a "try it"
box, its violation-rate chart and latest calls). Operators change policies; anyone may try a text (a try is not
recorded as a guard call)."""

from __future__ import annotations

import datetime
import json
import re

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, require_role, role_required
from opsportal.errors import InvalidInput, ServiceError
from opsportal.portal.actions import apply_form
from opsportal.portal.charts import figure_data
from opsportal.portal.forms import StyledForm
from opsportal.portal.htmx import render_page_or_partial

from .. import guardrail_charts, guardrails
from ..models import GuardCall, GuardPolicy, LLMModel
from ..services import guardrails as guard_services

WINDOWS = {"1": 1, "7": 7, "30": 30}
RECENT_CALLS = 25
BOTH = "both"
DIRECTION_CHOICES = [(BOTH, "Input and output"), ("input", "Input only"), ("output", "Output only")]


def _field_name(check: str, part: str) -> str:
    return f"{check}__{part}"


class NewPolicyForm(StyledForm):
    name = forms.CharField(max_length=100, help_text="Letters, digits and _-./; applications send it as `policy`.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    direction = forms.ChoiceField(choices=GuardPolicy.Direction.choices, initial=GuardPolicy.Direction.BOTH)
    action = forms.ChoiceField(choices=GuardPolicy.Action.choices, initial=GuardPolicy.Action.REDACT)


class PolicyForm(StyledForm):
    """A policy with one section per check type: on or off, threshold, directions and the type's options.

    A policy written through the API may hold several checks of one type; the form edits the first of each
    and keeps the others as they are.
    """

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    direction = forms.ChoiceField(choices=GuardPolicy.Direction.choices, help_text="The texts the policy accepts.")
    action = forms.ChoiceField(choices=GuardPolicy.Action.choices)
    record_text = forms.ChoiceField(choices=GuardPolicy.RecordText.choices, label="Recorded with each call",
                                    help_text="What a guard call keeps of the text.")  # fmt: skip
    is_default = forms.BooleanField(required=False, label="Default policy (applied when a call names none)")
    judge_model = forms.ModelChoiceField(queryset=LLMModel.objects.select_related("provider"), required=False,
                                         help_text="Grades llm-rubric checks.")  # fmt: skip

    def __init__(self, *args, policy: GuardPolicy, **kwargs) -> None:
        self.policy = policy
        first: dict[str, dict] = {}
        for check in policy.checks:
            first.setdefault(check["check"], check)
        initial = {
            "name": policy.name, "description": policy.description, "direction": policy.direction,
            "action": policy.action, "record_text": policy.record_text, "is_default": policy.is_default,
            "judge_model": policy.judge_model_id,
        }  # fmt: skip
        self.check_fields: dict[str, list[str]] = {}
        for name, info in guardrails.CHECKS.items():
            current = first.get(name)
            config = (current or {}).get("config") or {}
            initial[_field_name(name, "on")] = current is not None
            directions = (current or {}).get("directions") or list(guardrails.DIRECTIONS)
            initial[_field_name(name, "directions")] = directions[0] if len(directions) == 1 else BOTH
            if info.graded:
                initial[_field_name(name, "threshold")] = (current or {}).get("threshold")
            for option in info.config_fields:
                value = config.get(option.name, option.default)
                if option.kind == "string_list":
                    value = "\n".join(value or [])
                elif option.kind == "object":
                    value = json.dumps(value or {}, indent=1, ensure_ascii=False)
                initial[_field_name(name, option.name)] = value
        super().__init__(*args, initial=initial, **kwargs)
        for name, info in guardrails.CHECKS.items():
            names = [_field_name(name, "directions")]
            self.fields[_field_name(name, "on")] = forms.BooleanField(required=False, label=f"Use {info.label}")
            self.fields[names[0]] = forms.ChoiceField(choices=DIRECTION_CHOICES, label="Texts checked")
            if info.graded:
                names.append(_field_name(name, "threshold"))
                self.fields[names[-1]] = forms.FloatField(
                    required=False, min_value=0, max_value=1, label="Threshold",
                    help_text=f"{info.threshold_help}; empty: {info.default_threshold}",
                )  # fmt: skip
            for option in info.config_fields:
                names.append(_field_name(name, option.name))
                self.fields[names[-1]] = self._option_field(option)
            self.check_fields[name] = names
        # The check fields are added after StyledForm styled the others.
        self._style()

    def _style(self) -> None:
        for name, field in self.fields.items():
            widget = field.widget
            if "class" in widget.attrs:
                continue
            if isinstance(widget, forms.CheckboxInput):
                widget.attrs["class"] = "form-check-input"
            elif isinstance(widget, forms.Select):
                widget.attrs["class"] = "form-select"
            else:
                widget.attrs["class"] = "form-control"
            if field.help_text:
                widget.attrs.setdefault("aria-describedby", f"id_{self.add_prefix(name)}_help")

    @staticmethod
    def _option_field(option) -> forms.Field:
        label = option.name.replace("_", " ").capitalize()
        if option.kind == "boolean":
            return forms.BooleanField(required=False, label=label, help_text=option.help)
        if option.kind == "string_list":
            choices = f" Known: {', '.join(option.choices)}." if option.choices else ""
            return forms.CharField(required=False, label=label, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text=f"{option.help} One per line.{choices}")  # fmt: skip
        if option.kind in ("text", "object"):
            return forms.CharField(required=False, label=label, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text=option.help + (" JSON." if option.kind == "object" else ""))  # fmt: skip
        return forms.CharField(required=False, label=label, help_text=option.help)

    def sections(self) -> list[dict]:
        """Per check type: its description, its on/off box and its other fields (for the template)."""
        return [
            {"name": name, "info": info, "on": self[_field_name(name, "on")],
             "fields": [self[field] for field in self.check_fields[name]]}
            for name, info in guardrails.CHECKS.items()
        ]  # fmt: skip

    def checks(self) -> list[dict]:
        """The policy's checks from the cleaned form: one per type turned on, then the extra ones kept."""
        data = self.cleaned_data
        checks: list[dict] = []
        seen: set[str] = set()
        for name, info in guardrails.CHECKS.items():
            if not data.get(_field_name(name, "on")):
                continue
            direction = data[_field_name(name, "directions")]
            config = {}
            for option in info.config_fields:
                raw = data.get(_field_name(name, option.name))
                if option.kind == "string_list":
                    config[option.name] = [line.strip() for line in (raw or "").splitlines() if line.strip()]
                elif option.kind == "object":
                    try:
                        config[option.name] = json.loads(raw) if (raw or "").strip() else {}
                    except json.JSONDecodeError as exc:
                        raise InvalidInput(f"not valid JSON: {exc.msg}", field=_field_name(name, option.name)) from None
                else:
                    config[option.name] = raw
            check = {"check": name, "directions": list(guardrails.DIRECTIONS) if direction == BOTH else [direction],
                     "config": config}  # fmt: skip
            previous = next((c for c in self.policy.checks if c["check"] == name), None)
            if previous and previous.get("name"):
                check["name"] = previous["name"]
            if info.graded and data.get(_field_name(name, "threshold")) is not None:
                check["threshold"] = data[_field_name(name, "threshold")]
            checks.append(check)
        for check in self.policy.checks:
            if check["check"] in seen:
                checks.append(check)
            seen.add(check["check"])
        return checks

    def add_check_error(self, exc: ServiceError, checks: list[dict]) -> None:
        """Show an error naming `checks[i].config.option` on that check's field."""
        match = re.match(r"^checks\[(\d+)\]\.?(?:config\.)?(\w*)", exc.field or "")
        if match and int(match.group(1)) < len(checks):
            check = checks[int(match.group(1))]["check"]
            field = _field_name(check, match.group(2)) if match.group(2) else _field_name(check, "on")
            if field in self.fields:
                self.add_error(field, exc.message)
                return
        if exc.field in self.fields:
            self.add_error(exc.field, exc.message)
        else:
            self.add_error(None, str(exc))


class TryForm(StyledForm):
    text = forms.CharField(
        label="Text to check", widget=forms.Textarea(attrs={"rows": 4}), strip=False, max_length=20_000
    )
    direction = forms.ChoiceField(choices=[("input", "Input (to the model)"), ("output", "Output (from the model)")])


def _window(request: HttpRequest) -> int:
    return WINDOWS.get(request.GET.get("days", ""), 7)


def _chart(policy: GuardPolicy | None, days: int) -> dict:
    buckets = guard_services.violation_series(policy=policy, days=days)
    return figure_data(guardrail_charts.violation_rate(buckets, hourly=days <= 7))


@role_required(Role.VIEWER)
def guardrail_list(request: HttpRequest) -> HttpResponse:
    """The policies with their calls and violation rates over the window, and the violation-rate chart."""
    form = NewPolicyForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.OPERATOR, "Creating a guard policy")
        form = NewPolicyForm(request.POST, prefix="new")
        ok, policy = apply_form(form, lambda data: guard_services.create_policy(
            actor=request.user, checks=guard_services.DEFAULT_CHECKS, **data,
        ))  # fmt: skip
        if ok:
            messages.success(request, f"Policy {policy.name} created with the default checks. Tune them below.")
            return redirect(policy.get_absolute_url())
    days = _window(request)
    figures = guard_services.policy_figures(since=timezone.now() - datetime.timedelta(days=days))
    policies = list(GuardPolicy.objects.select_related("judge_model"))
    for policy in policies:
        policy.figures = figures.get(policy.pk, {"calls": 0, "violating": 0, "blocked": 0})
        policy.check_names = [check["name"] for check in policy.checks]
    context = {
        "policies": policies, "form": form, "days": days, "windows": WINDOWS, "chart": _chart(None, days),
        "has_default": any(policy.is_default for policy in policies), "built_in": guard_services.built_in_default(),
        "is_operator": has_role(request.user, Role.OPERATOR),
    }  # fmt: skip
    return render(request, "llmops/guardrail_list.html", context, status=400 if form.errors else 200)


def _detail(request: HttpRequest, policy: GuardPolicy, *, status: int = 200, form: PolicyForm | None = None,
            try_form: TryForm | None = None, result=None) -> HttpResponse:  # fmt: skip
    days = _window(request)
    context = {
        "policy": policy,
        "form": form or PolicyForm(policy=policy),
        "try_form": try_form or TryForm(initial={"direction": "output" if policy.direction == "output" else "input"}),
        "result": result,
        "days": days,
        "windows": WINDOWS,
        "chart": _chart(policy, days),
        "calls": GuardCall.objects.filter(policy=policy)[:RECENT_CALLS],
        "is_operator": has_role(request.user, Role.OPERATOR),
    }
    if try_form is None:
        return render(request, "llmops/guardrail_detail.html", context, status=status)
    context["tried"] = True
    response = render_page_or_partial(request, "llmops/guardrail_detail.html", "llmops/guardrail_try_result.html",
                                      context)  # fmt: skip
    if try_form.errors and not request.htmx:
        response.status_code = 400
    return response


@role_required(Role.VIEWER)
def guardrail_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One policy; operators save its form here."""
    policy = get_object_or_404(GuardPolicy.objects.select_related("judge_model__provider"), pk=pk)
    if request.method != "POST":
        return _detail(request, policy)
    require_role(request, Role.OPERATOR, "Changing a guard policy")
    form = PolicyForm(request.POST, policy=policy)
    if form.is_valid():
        data = form.cleaned_data
        checks: list[dict] = []
        try:
            checks = form.checks()
            guard_services.update_policy(
                policy=policy, actor=request.user, checks=checks,
                **{field: data[field] for field in ("name", "description", "direction", "action", "record_text",
                                                     "is_default", "judge_model")},
            )  # fmt: skip
        except ServiceError as exc:
            policy.refresh_from_db()
            form.add_check_error(exc, checks)
        else:
            messages.success(request, f"Policy {policy.name} saved.")
            return redirect(policy.get_absolute_url())
    return _detail(request, policy, status=400, form=form)


@require_POST
@role_required(Role.VIEWER)
def guardrail_try(request: HttpRequest, pk: int) -> HttpResponse:
    """The policy's verdict on a text (not recorded); for htmx only the result box."""
    policy = get_object_or_404(GuardPolicy.objects.select_related("judge_model__provider"), pk=pk)
    form = TryForm(request.POST)
    result = None
    if form.is_valid():
        try:
            result = guard_services.preview(policy=policy, text=form.cleaned_data["text"],
                                            direction=form.cleaned_data["direction"])  # fmt: skip
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    return _detail(request, policy, try_form=form, result=result)


@require_POST
@role_required(Role.OPERATOR)
def guardrail_delete(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(GuardPolicy, pk=pk)
    if request.POST.get("confirm", "").strip() != policy.name:
        messages.error(request, f"Type {policy.name} exactly to delete this policy.")
        return redirect(policy.get_absolute_url())
    guard_services.delete_policy(policy=policy, actor=request.user)
    messages.success(request, f"Policy {policy.name} deleted; its recorded calls stay.")
    return redirect("llmops:guardrails")
