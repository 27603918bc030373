"""Silence and correlation-rule pages: what is muted, and how alerts are grouped into incidents."""

from __future__ import annotations

import datetime

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
            "position": rule.position,
            "matchers": matcher_lines(rule.matchers),
            "group_by": ", ".join(rule.group_by),
            "window_minutes": rule.window_minutes,
            "auto_resolve": rule.auto_resolve,
            "reopen_cooldown_minutes": rule.reopen_cooldown_minutes,
            "enabled": rule.enabled,
        }
    form = RuleForm(request.POST or None, initial=initial)
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
