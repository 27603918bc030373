"""LLMOps pages, by domain: the overview, providers and prices, prompts and their versions, datasets, runs (and
the forms that start them), and the comparison of two runs.

Every change goes through `llmops.services`; a refusal (`opsportal.errors.ServiceError`) is shown next to the
field it names (or as a message), and a successful POST redirects.
"""

from .compare import compare
from .datasets import (
    dataset_delete,
    dataset_detail,
    dataset_export,
    dataset_import,
    dataset_item,
    dataset_item_delete,
    dataset_list,
)
from .evaluator_pages import evaluator_detail, evaluator_list, evaluator_toggle
from .guardrail_pages import guardrail_delete, guardrail_detail, guardrail_list, guardrail_try
from .monitor_pages import monitor_delete, monitor_detail, monitor_list
from .overview import index
from .prompts import prompt_action, prompt_detail, prompt_list
from .providers import price_list, price_lookup, provider_action, provider_detail, provider_list, provider_test
from .review_pages import review_add, review_export, review_item, review_list, review_next, review_queue
from .run_forms import run_new, run_score
from .runs import run_cancel, run_detail, run_export, run_list, run_progress
from .trace_pages import dashboards, session_detail, session_list, trace_detail, trace_list, user_detail, user_list
from .versions import prompt_diff, prompt_new_version, prompt_version

__all__ = [
    "compare",
    "dashboards",
    "dataset_delete",
    "dataset_detail",
    "dataset_export",
    "dataset_import",
    "dataset_item",
    "dataset_item_delete",
    "dataset_list",
    "evaluator_detail",
    "evaluator_list",
    "evaluator_toggle",
    "guardrail_delete",
    "guardrail_detail",
    "guardrail_list",
    "guardrail_try",
    "index",
    "monitor_delete",
    "monitor_detail",
    "monitor_list",
    "price_list",
    "price_lookup",
    "prompt_action",
    "prompt_detail",
    "prompt_diff",
    "prompt_list",
    "prompt_new_version",
    "prompt_version",
    "provider_action",
    "provider_detail",
    "provider_list",
    "provider_test",
    "review_add",
    "review_export",
    "review_item",
    "review_list",
    "review_next",
    "review_queue",
    "run_cancel",
    "run_detail",
    "run_export",
    "run_list",
    "run_new",
    "run_progress",
    "run_score",
    "session_detail",
    "session_list",
    "trace_detail",
    "trace_list",
    "user_detail",
    "user_list",
]  # fmt: skip
