"""Status pages: the public page at /status/<slug>/ and the admins' pages that publish them."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.portal.actions import apply_form

from ..models import Check, StatusPage
from ..services import status_pages


class StatusPageForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Shown as the page's title, e.g. 'Public API'.")
    slug = forms.CharField(
        max_length=100, label="Address", help_text="Published at /status/<address>/ (lower case, digits, '-')."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    checks = forms.MultipleChoiceField(
        required=False, help_text="Their names, states and daily uptime are public; labels and targets are not."
    )
    published = forms.BooleanField(required=False, help_text="Readable by anyone, without login.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["checks"].choices = [(str(c.pk), c.name) for c in Check.objects.order_by("name", "id")]

    def checklist(self) -> list[dict]:
        """The checks as one group of boxes for templates/includes/checklist.html, grouped by service."""
        chosen = set(self["checks"].value() or [])
        groups: dict[str, list[dict]] = {}
        for check in Check.objects.order_by("service", "name", "id").only("id", "name", "service", "kind"):
            groups.setdefault(check.service or "No service", []).append(
                {
                    "value": str(check.pk),
                    "id": f"id_checks_{check.pk}",
                    "label": f"{check.name} ({check.get_kind_display()})",
                    "chosen": str(check.pk) in chosen,
                }
            )
        return [{"name": name, "items": items} for name, items in groups.items()]


def _initial(page: StatusPage) -> dict:
    return {
        "name": page.name,
        "slug": page.slug,
        "description": page.description,
        "checks": [str(pk) for pk in page.checks.values_list("pk", flat=True)],
        "published": page.published,
    }


@role_required(Role.VIEWER)
def status_page_list(request: HttpRequest) -> HttpResponse:
    pages = StatusPage.objects.prefetch_related("checks").order_by("name")
    return render(request, "aiops/status_page_list.html", {"pages": pages})


@role_required(Role.ADMIN)
def status_page_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    page = get_object_or_404(StatusPage, pk=pk) if pk else None
    form = StatusPageForm(request.POST or None, initial=_initial(page) if page else {"published": True})
    if request.method == "POST":
        ok, saved = apply_form(
            form,
            lambda data: status_pages.save_status_page(
                actor=request.user,
                page=page,
                name=data["name"],
                slug=data["slug"],
                description=data["description"],
                check_ids=[int(pk) for pk in data["checks"]],
                published=data["published"],
            ),
        )
        if ok:
            messages.success(request, f"Status page {saved.name!r} saved.")
            return redirect("aiops:status_pages")
    return render(request, "aiops/status_page_form.html", {"form": form, "page": page, "checklist": form.checklist()})


@require_POST
@role_required(Role.ADMIN)
def status_page_delete(request: HttpRequest, pk: int) -> HttpResponse:
    page = get_object_or_404(StatusPage, pk=pk)
    status_pages.delete_status_page(page=page, actor=request.user)
    messages.success(request, f"Status page {page.name!r} deleted.")
    return redirect("aiops:status_pages")


def _visible_page(request: HttpRequest, slug: str) -> StatusPage:
    """A published page for anyone; an unpublished one only for admins (a preview); else 404."""
    page = StatusPage.objects.filter(slug=slug).first()
    if page is None:
        raise Http404("No such status page.")
    if not page.published and not (request.user.is_authenticated and has_role(request.user, Role.ADMIN)):
        raise Http404("No such status page.")
    return page


@login_not_required
@require_safe
def public_status_page(request: HttpRequest, slug: str) -> HttpResponse:
    page = _visible_page(request, slug)
    status = status_pages.public_status(page)
    response = render(request, "aiops/status_public.html", {"page": page, "status": status})
    response["Cache-Control"] = "public, max-age=30" if page.published else "private, no-store"
    return response


@login_not_required
@require_safe
def public_status_json(request: HttpRequest, slug: str) -> HttpResponse:
    page = _visible_page(request, slug)
    response = JsonResponse(status_pages.public_status(page).as_json())
    response["Cache-Control"] = "public, max-age=30" if page.published else "private, no-store"
    return response
