"""Providers (OpenAI-compatible endpoints), their models and prices, and the price table."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.encryption import encrypt

from ..models import LLMModel, PriceEntry, Provider
from .base import Actor, InvalidInput, NotFound, clean_decimal


def _clean_headers(headers: object) -> dict[str, str]:
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise InvalidInput("must be an object of header name -> text", field="default_headers")
    return headers


@transaction.atomic
def create_provider(
    *, name: str, base_url: str, actor: Actor, api_key: str = "", default_headers: dict | None = None,
    timeout_seconds: float = 60.0, max_concurrency: int = 8, max_retries: int = 4,
) -> Provider:  # fmt: skip
    if Provider.objects.filter(name=name).exists():
        raise InvalidInput(f"a provider named {name!r} exists already", field="name")
    if not 1 <= int(max_concurrency) <= 256:
        raise InvalidInput("between 1 and 256", field="max_concurrency")
    provider = Provider.objects.create(
        name=name,
        base_url=base_url.rstrip("/"),
        api_key=encrypt(api_key) if api_key else "",
        default_headers=_clean_headers(default_headers),
        timeout_seconds=float(timeout_seconds),
        max_concurrency=int(max_concurrency),
        max_retries=int(max_retries),
    )
    audit.record(action="create", actor=actor, obj=provider, message=f"Provider {name} ({provider.base_url})")
    return provider


@transaction.atomic
def update_provider(*, provider: Provider, actor: Actor, api_key: str | None = None, **fields: object) -> Provider:
    """Change fields; `api_key` None keeps the stored key, "" removes it, anything else replaces it."""
    allowed = {"name", "base_url", "default_headers", "timeout_seconds", "max_concurrency", "max_retries", "enabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if "default_headers" in fields:
        fields["default_headers"] = _clean_headers(fields["default_headers"])
    if "name" in fields and Provider.objects.filter(name=fields["name"]).exclude(pk=provider.pk).exists():
        raise InvalidInput(f"a provider named {fields['name']!r} exists already", field="name")
    if "base_url" in fields:
        fields["base_url"] = str(fields["base_url"]).rstrip("/")
    if "max_concurrency" in fields and not 1 <= int(fields["max_concurrency"]) <= 256:
        raise InvalidInput("between 1 and 256", field="max_concurrency")
    before = audit.snapshot(provider, fields)
    for key, value in fields.items():
        setattr(provider, key, value)
    changes = audit.diff(before, audit.snapshot(provider, fields))
    if api_key is not None:
        provider.api_key = encrypt(api_key) if api_key else ""
        changes["api_key"] = ["(hidden)", "(replaced)" if api_key else "(removed)"]
    provider.updated_at = timezone.now()
    provider.save()
    if changes:
        audit.record(action="update", actor=actor, obj=provider, changes=changes)
    return provider


@transaction.atomic
def delete_provider(*, provider: Provider, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=provider)
    provider.delete()


TEST_MESSAGE_MAX = 500


def record_connection_test(*, provider: Provider, model_name: str, ok: bool, message: str) -> Provider:
    """Keep a "test connection" result on the provider: the provider list and the new-run form show it.

    A probe's outcome, not a change of configuration: no audit entry. Only the test fields are
    written, so the caller's instance may carry a shortened timeout without it being saved.
    """
    if len(message) > TEST_MESSAGE_MAX:
        message = message[: TEST_MESSAGE_MAX - 1] + "…"
    fields = {
        "last_test_ok": bool(ok),
        "last_test_at": timezone.now(),
        "last_test_model": model_name[:200],
        "last_test_message": message,
    }
    Provider.objects.filter(pk=provider.pk).update(**fields)
    for key, value in fields.items():
        setattr(provider, key, value)
    return provider


def price_for(*, model_name: str) -> PriceEntry | None:
    """The price table's entry for a model name: an exact match, else the longest matching `prefix*`."""
    exact = PriceEntry.objects.filter(model_name=model_name).first()
    if exact is not None:
        return exact
    best = None
    for entry in PriceEntry.objects.filter(model_name__endswith="*"):
        prefix = entry.model_name[:-1]
        if model_name.startswith(prefix) and (best is None or len(prefix) > len(best.model_name) - 1):
            best = entry
    return best


# An argument left out: the stored value stays.
KEEP = object()
CACHE_FIELDS = ("cache_read_per_million", "cache_write_per_million")
PRICE_FIELDS = ("input_per_million", "output_per_million", *CACHE_FIELDS)


def clean_cache_price(value: object, field: str) -> Decimal | None:
    """A prompt-cache price: empty (None) means priced as input tokens."""
    if value is None or value == "":
        return None
    number = clean_decimal(value, field)
    if number >= 10**8 or number != number.quantize(Decimal("0.000001")):
        raise InvalidInput("at most 8 digits before the decimal point and 6 after it", field=field)
    return number


def _describe(row: PriceEntry | LLMModel) -> str:
    text = f"{row.input_per_million} in / {row.output_per_million} out"
    if row.cache_read_per_million is not None:
        text += f" / {row.cache_read_per_million} cache read"
    if row.cache_write_per_million is not None:
        text += f" / {row.cache_write_per_million} cache write"
    return text + " USD per 1M tokens"


@transaction.atomic
def add_model(
    *, provider: Provider, name: str, actor: Actor, input_per_million: object = None, output_per_million: object = None,
    cache_read_per_million: object = None, cache_write_per_million: object = None,
) -> LLMModel:  # fmt: skip
    """Add a model to a provider; each price left empty comes from the price table's entry for its name
    (else 0, and no cache price: cached tokens priced as input)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("required", field="name")
    name = name.strip()
    known = price_for(model_name=name)
    model = LLMModel(provider=provider, name=name)
    model.input_per_million = (
        clean_decimal(input_per_million, "input_per_million")
        if input_per_million not in (None, "")
        else (known.input_per_million if known else Decimal(0))
    )
    model.output_per_million = (
        clean_decimal(output_per_million, "output_per_million")
        if output_per_million not in (None, "")
        else (known.output_per_million if known else Decimal(0))
    )
    for field, value in zip(CACHE_FIELDS, (cache_read_per_million, cache_write_per_million), strict=True):
        price = clean_cache_price(value, field)
        setattr(model, field, price if price is not None or known is None else getattr(known, field))
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        raise InvalidInput(f"{provider.name} already has a model {name!r}", field="name") from None
    audit.record(action="create", actor=actor, obj=model, message=f"Model {model} at {_describe(model)}")
    return model


@transaction.atomic
def update_model_prices(
    *, model: LLMModel, actor: Actor, input_per_million: object, output_per_million: object,
    cache_read_per_million: object = KEEP, cache_write_per_million: object = KEEP,
) -> LLMModel:  # fmt: skip
    """Change a model's prices; a cache price left out stays, an empty one (None) clears it."""
    before = audit.snapshot(model, list(PRICE_FIELDS))
    input_price = clean_decimal(input_per_million, "input_per_million")
    output_price = clean_decimal(output_per_million, "output_per_million")
    cache = {
        field: clean_cache_price(value, field)
        for field, value in zip(CACHE_FIELDS, (cache_read_per_million, cache_write_per_million), strict=True)
        if value is not KEEP
    }
    model.input_per_million, model.output_per_million = input_price, output_price
    for field, value in cache.items():
        setattr(model, field, value)
    model.save(update_fields=list(PRICE_FIELDS))
    changes = audit.diff(before, audit.snapshot(model, list(PRICE_FIELDS)))
    audit.record(action="update", actor=actor, obj=model, changes=changes)
    return model


@transaction.atomic
def set_price(
    *, model_name: str, input_per_million: object, output_per_million: object, actor: Actor,
    cache_read_per_million: object = KEEP, cache_write_per_million: object = KEEP,
) -> PriceEntry:  # fmt: skip
    """Add or change an entry of the price table (admins); a cache price left out stays (a new entry: none),
    an empty one (None) clears it."""
    if not isinstance(model_name, str) or not model_name.strip():
        raise InvalidInput("required", field="model_name")
    defaults = {
        "input_per_million": clean_decimal(input_per_million, "input_per_million"),
        "output_per_million": clean_decimal(output_per_million, "output_per_million"),
        "updated_at": timezone.now(),
    }
    for field, value in zip(CACHE_FIELDS, (cache_read_per_million, cache_write_per_million), strict=True):
        if value is not KEEP:
            defaults[field] = clean_cache_price(value, field)
    entry, created = PriceEntry.objects.update_or_create(model_name=model_name.strip(), defaults=defaults)
    audit.record(
        action="create" if created else "update",
        actor=actor,
        obj=entry,
        message=f"Price of {entry.model_name}: {_describe(entry)}",
    )
    return entry


def resolve_model(*, reference: str) -> LLMModel:
    """A model by "provider/name", or by name when only one provider offers it."""
    provider_name, sep, name = reference.rpartition("/") if "/" in reference else ("", "", reference)
    queryset = LLMModel.objects.select_related("provider")
    matches = list(queryset.filter(provider__name=provider_name, name=name) if sep else queryset.filter(name=name))
    if not matches and sep:
        matches = list(queryset.filter(name=reference))  # model ids may contain "/" themselves
    if not matches:
        raise NotFound(f"no model {reference!r} (use provider/model)")
    if len(matches) > 1:
        raise InvalidInput(f"{reference!r} is offered by several providers; say provider/model", field="model")
    return matches[0]
