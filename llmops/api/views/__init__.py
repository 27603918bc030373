"""LLMOps REST API, by domain: providers and prices, prompts, datasets, runs.

Views call the services and let their `opsportal.errors.ServiceError`s through: the API's exception
handler answers each with its status and the one error format.
"""

from .datasets import DatasetItemViewSet, DatasetViewSet
from .prompts import PROMPT_NAME, LabelMoveViewSet, PromptLabelViewSet, PromptVersionViewSet, PromptViewSet
from .providers import LLMModelViewSet, PriceEntryViewSet, ProviderViewSet
from .runs import EvalRunViewSet, RunResultViewSet

__all__ = [
    "PROMPT_NAME",
    "DatasetItemViewSet",
    "DatasetViewSet",
    "EvalRunViewSet",
    "LLMModelViewSet",
    "LabelMoveViewSet",
    "PriceEntryViewSet",
    "PromptLabelViewSet",
    "PromptVersionViewSet",
    "PromptViewSet",
    "ProviderViewSet",
    "RunResultViewSet",
]
