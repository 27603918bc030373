"""Login, profile with API tokens, and user management for admins."""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from opsportal.audit.models import AuditEntry

from . import services
from .forms import StyledPasswordChangeForm as PasswordChangeForm
from .forms import TokenCreateForm, UserCreateForm, UserUpdateForm
from .models import ApiToken
from .roles import ROLE_GROUPS, Role, role_of, role_required

NEW_TOKEN_SESSION_KEY = "accounts.new_token"


def _profile_context(request: HttpRequest, **extra) -> dict:
    return {
        "tokens": ApiToken.objects.filter(user=request.user),
        "token_form": extra.pop("token_form", TokenCreateForm()),
        "password_form": extra.pop("password_form", PasswordChangeForm(request.user)),
        "recent_activity": AuditEntry.objects.filter(actor=request.user)[:10],
        **extra,
    }


def profile(request: HttpRequest) -> HttpResponse:
    # A token just created is in the session for exactly one page view (see token_create).
    new = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    extra = {}
    if new:
        extra = {"new_token": new["raw"], "new_token_name": new["name"]}
    return render(request, "accounts/profile.html", _profile_context(request, **extra))


@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return render(request, "accounts/profile.html", _profile_context(request, token_form=form), status=400)
    days = form.cleaned_data["expires_in_days"]
    expires_at = timezone.now() + datetime.timedelta(days=days) if days else None
    token, raw = services.create_api_token(
        user=request.user, name=form.cleaned_data["name"], actor=request.user, expires_at=expires_at
    )
    # Post/redirect/get, so reloading the page cannot create a second token. The
    # secret rides in the session only until the next page view pops it.
    request.session[NEW_TOKEN_SESSION_KEY] = {"raw": raw, "name": token.name}
    return redirect("accounts:profile")


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.revoke_api_token(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("accounts:profile")


@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST)
    if not form.is_valid():
        return render(request, "accounts/profile.html", _profile_context(request, password_form=form), status=400)
    services.set_password(user=request.user, password=form.cleaned_data["new_password1"], actor=request.user)
    update_session_auth_hash(request, request.user)
    messages.success(request, "Password changed.")
    return redirect("accounts:profile")


@role_required(Role.ADMIN)
def user_list(request: HttpRequest) -> HttpResponse:
    users = User.objects.order_by("username").prefetch_related(Prefetch("groups", to_attr="role_groups"))
    query = request.GET.get("q", "").strip()
    if query:
        users = users.filter(Q(username__icontains=query) | Q(email__icontains=query))
    page = Paginator(users, 50).get_page(request.GET.get("page"))
    rows = []
    for user in page:
        names = {g.name for g in user.role_groups} & set(ROLE_GROUPS)
        role = Role.ADMIN if user.is_superuser else max((Role.from_name(n) for n in names), default=None)
        rows.append((user, role))
    return render(request, "accounts/user_list.html", {"page": page, "rows": rows, "q": query})


@role_required(Role.ADMIN)
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user = services.create_user(
            username=data["username"],
            email=data["email"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            role=Role.from_name(data["role"]),
            password=data["password"] or None,
            actor=request.user,
        )
        messages.success(request, f"User {user.username} created.")
        return redirect("accounts:user_list")
    return render(request, "accounts/user_form.html", {"form": form}, status=400 if form.errors else 200)


@role_required(Role.ADMIN)
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    role = role_of(user)
    initial = {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": role.group_name if role else "viewer",
        "is_active": user.is_active,
    }
    form = UserUpdateForm(request.POST or None, initial=initial, user=user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.update_user(
                user=user,
                actor=request.user,
                role=Role.from_name(data["role"]),
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                is_active=data["is_active"],
            )
            if data["new_password"]:
                services.set_password(user=user, password=data["new_password"], actor=request.user)
        except (ValueError, ValidationError) as exc:
            form.add_error(None, exc.messages if isinstance(exc, ValidationError) else str(exc))
        else:
            messages.success(request, f"User {user.username} updated.")
            return redirect("accounts:user_list")
    history = AuditEntry.objects.for_object("auth", "user", user.pk)[:20]
    return render(
        request,
        "accounts/user_form.html",
        {"form": form, "edited_user": user, "history": history},
        status=400 if form.errors else 200,
    )
