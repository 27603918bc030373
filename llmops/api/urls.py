from django.urls import path
from rest_framework.routers import SimpleRouter

from opsportal.portal.api_views import AppApiRoot

from . import feedback, guard, monitors, review, traces, views

app_name = "llmops"

router = SimpleRouter(trailing_slash=True)
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("models", views.LLMModelViewSet, basename="model")
router.register("prices", views.PriceEntryViewSet, basename="price")
# Prompt names may contain "/", so the prompt's own routes match greedily: what is nested under a prompt
# is registered first.
_prompt = f"prompts/(?P<prompt_name>{views.PROMPT_NAME})"
router.register(f"{_prompt}/versions", views.PromptVersionViewSet, basename="prompt-version")
router.register(f"{_prompt}/labels", views.PromptLabelViewSet, basename="prompt-label")
router.register(f"{_prompt}/label-moves", views.LabelMoveViewSet, basename="prompt-label-move")
router.register("prompts", views.PromptViewSet, basename="prompt")
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register(r"datasets/(?P<dataset_pk>[^/]+)/items", views.DatasetItemViewSet, basename="dataset-item")
router.register("runs", views.EvalRunViewSet, basename="run")
router.register(r"runs/(?P<run_pk>[0-9]+)/results", views.RunResultViewSet, basename="run-result")
router.register("traces", traces.TraceViewSet, basename="trace")
router.register("sessions", traces.SessionViewSet, basename="session")
router.register("users", traces.EndUserViewSet, basename="end-user")
router.register("guard-policies", guard.GuardPolicyViewSet, basename="guard-policy")
router.register("guard-calls", guard.GuardCallViewSet, basename="guard-call")
router.register("scores", feedback.ScoreViewSet, basename="score")
router.register("score-configs", review.ScoreConfigViewSet, basename="score-config")
router.register("queues", review.QueueViewSet, basename="queue")
router.register("evaluators", feedback.EvaluatorViewSet, basename="evaluator")
router.register("monitors", monitors.LLMMonitorViewSet, basename="monitor")

urlpatterns = [
    path("", AppApiRoot.as_view(router=router, app_namespace="api:llmops"), name="root"),
    path("otlp/v1/traces", traces.OtlpTracesView.as_view(), name="otlp-traces"),
    path("guard/", guard.GuardView.as_view(), name="guard"),
    path("feedback/", feedback.FeedbackView.as_view(), name="feedback"),
    *router.urls,
]
