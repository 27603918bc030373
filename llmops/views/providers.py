"""Provider pages: the providers with their models, one provider (edit, models, prices, test, delete), the price
table. Admins change them."""

from __future__ import annotations

import asyncio

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from opsportal.accounts.roles import Role, require_role, role_required
from opsportal.errors import InvalidInput
from opsportal.portal.actions import PageAction, apply_form, dispatch

from .. import engine, services
from ..forms import AddModelForm, DeleteConfirmForm, ModelPriceForm, PriceForm, ProviderForm, TestConnectionForm
from ..models import EvalRun, LLMModel, PriceEntry, Provider
from ..services.providers import PRICE_FIELDS

TEST_TIMEOUT_SECONDS = 20.0


@role_required(Role.VIEWER)
def provider_list(request: HttpRequest) -> HttpResponse:
    """Providers with their models and prices; admins add providers here."""
    form = ProviderForm(prefix="new")
    if request.method == "POST":
        require_role(request, Role.ADMIN, "Adding a provider")
        form = ProviderForm(request.POST, prefix="new")
        ok, provider = apply_form(form, lambda data: services.create_provider(
            actor=request.user, name=data["name"].strip(), base_url=data["base_url"], api_key=data["api_key"],
            default_headers=data["default_headers"], timeout_seconds=data["timeout_seconds"],
            max_concurrency=data["max_concurrency"], max_retries=data["max_retries"],
        ))  # fmt: skip
        if ok:
            messages.success(request, f"Provider {provider.name} added. Add its models below.")
            return redirect("llmops:provider", provider.pk)
    providers = Provider.objects.prefetch_related(Prefetch("models", queryset=LLMModel.objects.order_by("name")))
    return render(
        request,
        "llmops/provider_list.html",
        {"providers": providers, "form": form},
        status=400 if form.errors else 200,
    )


def _prices(row: LLMModel | PriceEntry) -> dict:
    """A model's or a price table entry's prices, as the price forms' initial values."""
    return {field: getattr(row, field) for field in PRICE_FIELDS}


def _provider_page(request: HttpRequest, provider: Provider, status: int = 200, **forms) -> HttpResponse:
    models = list(provider.models.order_by("name"))
    for model in models:
        model.price_form = ModelPriceForm(prefix=f"price-{model.pk}", initial=_prices(model))
        if forms.get("price_model") == model.pk:
            model.price_form = forms["price_form"]
    context = {
        "provider": provider,
        "models": models,
        "edit_form": forms.get("edit_form")
        or ProviderForm(prefix="edit", creating=False, initial=ProviderForm.initial_for(provider)),
        "model_form": forms.get("model_form") or AddModelForm(prefix="model"),
        "test_form": TestConnectionForm(initial={"model_name": models[0].name if models else ""}),
        "delete_form": forms.get("delete_form") or DeleteConfirmForm(prefix="delete"),
        "runs": EvalRun.objects.filter(columns__model__provider=provider).distinct().order_by("-created_at")[:10],
    }
    return render(request, "llmops/provider_detail.html", context, status=status)


@never_cache
@role_required(Role.VIEWER)
def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _provider_page(request, get_object_or_404(Provider, pk=pk))


def _edit_provider(request: HttpRequest, provider: Provider, data: dict) -> Provider:
    data = dict(data)
    remove, key = data.pop("remove_api_key"), data.pop("api_key")
    # Empty keeps the stored key; the box removes it; anything typed replaces it.
    api_key = "" if remove else (key or None)
    data["name"] = data["name"].strip()
    return services.update_provider(provider=provider, actor=request.user, api_key=api_key, **data)


def _delete_provider(request: HttpRequest, provider: Provider, data: dict) -> None:
    if data["confirm"].strip() != provider.name:
        raise InvalidInput(f"Type {provider.name} exactly to delete this provider.", field="confirm")
    services.delete_provider(provider=provider, actor=request.user)


def _page(provider: Provider) -> str:
    return reverse("llmops:provider", args=[provider.pk])


PROVIDER_ACTIONS = {
    "edit": PageAction(
        form=lambda data, prefix=None: ProviderForm(data, prefix="edit", creating=False),
        run=_edit_provider,
        success=lambda provider, result, data: f"Provider {result.name} saved.",
        next=lambda provider, result: _page(provider),
    ),
    "add-model": PageAction(
        form=AddModelForm,
        prefix="model",
        run=lambda request, provider, data: services.add_model(provider=provider, actor=request.user, **data),
        success=lambda provider, model, data: (
            f"Model {model.name} added at ${model.input_per_million} in / ${model.output_per_million} out "
            "per 1M tokens."
        ),
        next=lambda provider, result: _page(provider),
    ),
    "delete": PageAction(
        form=DeleteConfirmForm,
        prefix="delete",
        run=_delete_provider,
        success=lambda provider, result, data: f"Provider {provider.name} deleted with its models.",
        next=lambda provider, result: reverse("llmops:providers"),
    ),
}
# Where each action's form is shown again when it is refused.
PROVIDER_FORMS = {"edit": "edit_form", "add-model": "model_form", "delete": "delete_form"}


@require_POST
@role_required(Role.ADMIN)
def provider_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """edit / add-model / price / delete."""
    provider = get_object_or_404(Provider, pk=pk)
    if action == "price":
        return _model_prices(request, provider)

    def invalid(form) -> HttpResponse:
        provider.refresh_from_db()  # a refused edit may have changed the instance
        return _provider_page(request, provider, 400, **{PROVIDER_FORMS[action]: form})

    return dispatch(request, PROVIDER_ACTIONS, action, provider, invalid=invalid)


def _model_prices(request: HttpRequest, provider: Provider) -> HttpResponse:
    """A model's prices, from that model's row: the form's prefix names the model."""
    model = get_object_or_404(LLMModel, pk=request.POST.get("model", "0") or 0, provider=provider)
    form = ModelPriceForm(request.POST, prefix=f"price-{model.pk}")
    ok, _ = apply_form(form, lambda data: services.update_model_prices(model=model, actor=request.user, **data))
    if not ok:
        return _provider_page(request, provider, 400, price_model=model.pk, price_form=form)
    messages.success(request, f"Prices of {model.name} saved.")
    return redirect("llmops:provider", provider.pk)


@require_POST
@role_required(Role.ADMIN)
def provider_test(request: HttpRequest, pk: int) -> HttpResponse:
    """One small call to the provider; shows the model's answer or the exact error."""
    provider = get_object_or_404(Provider, pk=pk)
    form = TestConnectionForm(request.POST)
    if not form.is_valid():
        ok, text, model_name = False, "Give the model id to call.", ""
    else:
        model_name = form.cleaned_data["model_name"].strip()
        # A page waits for the answer: never as long as a run would.
        provider.timeout_seconds = min(provider.timeout_seconds, TEST_TIMEOUT_SECONDS)
        ok, text = asyncio.run(engine.test_connection(provider, model_name))
        services.record_connection_test(provider=provider, model_name=model_name, ok=ok, message=text)
    context = {"ok": ok, "text": text, "model_name": model_name, "provider": provider}
    if request.htmx:
        return render(request, "llmops/_test_result.html", context)
    (messages.success if ok else messages.error)(request, f"{provider.name}/{model_name}: {text}")
    return redirect("llmops:provider", provider.pk)


@role_required(Role.VIEWER)
def price_list(request: HttpRequest) -> HttpResponse:
    """The price table new models take their prices from; admins edit it."""
    editing = request.GET.get("edit", "")
    entry = PriceEntry.objects.filter(model_name=editing).first() if editing else None
    initial = {}
    if entry is not None:
        initial = {"model_name": entry.model_name, **_prices(entry)}
    form = PriceForm(initial=initial)
    if request.method == "POST":
        require_role(request, Role.ADMIN, "Editing the price table")
        form = PriceForm(request.POST)
        ok, saved = apply_form(form, lambda data: services.set_price(actor=request.user, **data))
        if ok:
            messages.success(request, f"Price of {saved.model_name} saved.")
            return redirect("llmops:prices")
    q = request.GET.get("q", "").strip()
    entries = PriceEntry.objects.all()
    if q:
        entries = entries.filter(model_name__icontains=q)
    return render(
        request,
        "llmops/price_list.html",
        {"entries": entries, "form": form, "editing": entry, "q": q},
        status=400 if form.errors else 200,
    )


@require_GET
@role_required(Role.ADMIN)
def price_lookup(request: HttpRequest) -> HttpResponse:
    """The add-model form's price fields, filled from the price table's entry for the typed model id."""
    name = request.GET.get("model-name", "").strip()
    entry = services.price_for(model_name=name) if name else None
    initial = {}
    if entry is not None:
        initial = _prices(entry)
    form = AddModelForm(prefix="model", initial={"name": name, **initial})
    return render(request, "llmops/_model_prices.html", {"model_form": form, "entry": entry, "looked_up": name})
