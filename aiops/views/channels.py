"""Notification pages (admins): channels, each created with its first route, and their routes."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.actions import apply_form

from .. import services
from ..forms import ChannelForm
from ..models import NotificationChannel, NotificationRoute


@role_required(Role.ADMIN)
def channel_list(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST or None)
    if request.method == "POST":
        ok, channel = apply_form(
            form,
            lambda data: services.create_channel_with_route(
                actor=request.user,
                name=data["name"],
                kind=data["kind"],
                target=data["target"],
                secret=data["secret"] or None,
                severities=data["severities"],
                services=data["services"].split(","),
            ),
        )
        if ok:
            messages.success(request, f"Channel {channel.name} created.")
            return redirect("aiops:channels")
    channels = NotificationChannel.objects.prefetch_related("routes").annotate(sent=Count("notifications"))
    return render(request, "aiops/channel_list.html", {"form": form, "channels": channels})


@require_POST
@role_required(Role.ADMIN)
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_channel(channel=get_object_or_404(NotificationChannel, pk=pk), actor=request.user)
    return redirect("aiops:channels")


@require_POST
@role_required(Role.ADMIN)
def route_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_route(route=get_object_or_404(NotificationRoute, pk=pk), actor=request.user)
    return redirect("aiops:channels")
