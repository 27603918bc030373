"""The models of LLMOps: providers, prompts, datasets and evaluation runs (`evaluation`); production traces
and what watches them live beside it in their own modules."""

from .evaluation import (
    Dataset,
    DatasetItem,
    EvalRun,
    LabelMove,
    LLMModel,
    PriceEntry,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
    RunColumn,
    RunItem,
    RunResult,
)
from .guardrails import GuardCall, GuardPolicy
from .monitors import LLMMonitor, LLMMonitorReading
from .scores import AnnotationItem, AnnotationQueue, DataType, Evaluator, Score, ScoreConfig
from .traces import EndUser, Session, Span, Trace

__all__ = [
    "AnnotationItem",
    "AnnotationQueue",
    "DataType",
    "Dataset",
    "DatasetItem",
    "EndUser",
    "EvalRun",
    "Evaluator",
    "GuardCall",
    "GuardPolicy",
    "LLMModel",
    "LLMMonitor",
    "LLMMonitorReading",
    "LabelMove",
    "PriceEntry",
    "Prompt",
    "PromptLabel",
    "PromptVersion",
    "Provider",
    "RunColumn",
    "RunItem",
    "RunResult",
    "Score",
    "ScoreConfig",
    "Session",
    "Span",
    "Trace",
]
