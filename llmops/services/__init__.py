"""LLMOps's facade: every write, in one transaction with its audit entry, split by domain.

- `providers`: providers, their models and prices, the price table;
- `prompts`: prompts, versions, labels and the release gate;
- `datasets`: datasets, items, import;
- `runs`: evaluation runs (create, score imported outputs, cancel, re-score);
- `overview`: the app's figures and its card on the portal's overview.

Callers use `llmops.services.<name>`; errors follow `opsportal.errors` (see `base`).
"""

from ..summary import summarise
from .base import Actor, GateRefused, InvalidInput, LLMOpsError, NotAllowed, NotFound, ServiceError
from .datasets import (
    add_item,
    create_dataset,
    delete_dataset,
    delete_item,
    get_dataset,
    import_items,
    preview_import,
    update_dataset,
    update_item,
)
from .overview import cost_per_day, latest_runs_per_prompt, overview
from .prompts import (
    LABEL_RE,
    PARAMETER_KEYS,
    PRODUCTION,
    create_prompt,
    create_version,
    delete_label,
    gate_check,
    get_prompt,
    get_version,
    move_label,
    resolve,
    update_prompt,
)
from .providers import (
    add_model,
    create_provider,
    delete_provider,
    price_for,
    record_connection_test,
    resolve_model,
    set_price,
    update_model_prices,
    update_provider,
)
from .runs import MAX_RUN_CELLS, cancel_run, create_run, create_score_run, rescore_run

__all__ = [
    "LABEL_RE", "MAX_RUN_CELLS", "PARAMETER_KEYS", "PRODUCTION",
    "Actor", "GateRefused", "InvalidInput", "LLMOpsError", "NotAllowed", "NotFound", "ServiceError",
    "add_item", "add_model", "cancel_run", "cost_per_day", "create_dataset", "create_prompt", "create_provider",
    "create_run", "create_score_run", "create_version", "delete_dataset", "delete_item", "delete_label",
    "delete_provider", "gate_check", "get_dataset", "get_prompt", "get_version", "import_items",
    "latest_runs_per_prompt", "move_label", "overview", "preview_import", "price_for",
    "record_connection_test", "rescore_run", "resolve",
    "resolve_model", "set_price", "summarise", "update_dataset", "update_item", "update_model_prices",
    "update_prompt", "update_provider",
]  # fmt: skip
