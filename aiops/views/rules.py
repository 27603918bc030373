"""Silence and correlation-rule pages: what is muted, and how alerts are grouped into incidents."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.portal.actions import apply_form

from .. import services
from ..forms import RuleForm, SilenceForm, matcher_lines
from ..models import CorrelationRule, Silence


@role_required(Role.VIEWER)
def silence_list(request: HttpRequest) -> HttpResponse:
    form = SilenceForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, Role.OPERATOR):
            return HttpResponse("Operators and admins create silences.", status=403)
        ok, _silence = apply_form(
            form,
            lambda data: services.create_silence(
                matchers=data["matchers"],
                ends_at=timezone.now() + datetime.timedelta(hours=data["duration_hours"]),
                comment=data["comment"],
                actor=request.user,
            ),
        )
        if ok:
            messages.success(request, "Silence created.")
            return redirect("aiops:silences")
    now = timezone.now()
    silences = Silence.objects.select_related("created_by").annotate(suppressed=Count("suppressed_alerts"))
    return render(
        request,
        "aiops/silence_list.html",
        {
            "form": form,
            "active": [s for s in silences if s.is_active(now)],
            "other": [s for s in silences[:200] if not s.is_active(now)],
        },
    )


@require_POST
@role_required(Role.OPERATOR)
def silence_expire(request: HttpRequest, pk: int) -> HttpResponse:
    services.expire_silence(silence=get_object_or_404(Silence, pk=pk), actor=request.user)
    messages.success(request, "Silence expired.")
    return redirect("aiops:silences")


class RuleKindForm(RuleForm):
    """The rule form with the rule's kind; a learned rule needs no group-by keys."""

    kind = forms.ChoiceField(
        choices=CorrelationRule.Kind.choices,
        initial=CorrelationRule.Kind.LABELS,
        required=False,
        help_text="Labels: same values of the group-by keys. Learned: alerts of one failure, scored from labels, "
        "titles, timing and history (see the docs).",
    )
    field_order = ["name", "kind"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group_by"].required = False
        self.fields["group_by"].help_text += " Not used by learned rules."

    def clean_kind(self) -> str:
        return self.cleaned_data["kind"] or CorrelationRule.Kind.LABELS

    def clean_group_by(self) -> list[str]:
        keys = [k.strip() for k in self.cleaned_data["group_by"].split(",") if k.strip()]
        if not keys and self.data.get("kind") != CorrelationRule.Kind.LEARNED:
            raise forms.ValidationError("At least one label key is required.")
        return keys


@role_required(Role.VIEWER)
def rule_list(request: HttpRequest) -> HttpResponse:
    return render(request, "aiops/rule_list.html", {"rules": CorrelationRule.objects.all()})


@role_required(Role.ADMIN)
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(CorrelationRule, pk=pk) if pk else None
    initial = {}
    if rule:
        initial = {
            "name": rule.name,
            "kind": rule.kind,
            "position": rule.position,
            "matchers": matcher_lines(rule.matchers),
            "group_by": ", ".join(rule.group_by),
            "window_minutes": rule.window_minutes,
            "auto_resolve": rule.auto_resolve,
            "reopen_cooldown_minutes": rule.reopen_cooldown_minutes,
            "enabled": rule.enabled,
        }
    form = RuleKindForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if "delete" in request.POST and rule:
            services.delete_rule(rule=rule, actor=request.user)
            messages.success(request, f"Rule {rule.name} deleted.")
            return redirect("aiops:rules")
        ok, _rule = apply_form(form, lambda data: services.save_rule(actor=request.user, rule=rule, **data))
        if ok:
            messages.success(request, "Rule saved.")
            return redirect("aiops:rules")
    return render(request, "aiops/rule_form.html", {"form": form, "rule": rule}, status=400 if form.errors else 200)
