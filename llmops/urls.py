from django.urls import path

from . import views

app_name = "llmops"

# Prompt names may hold '/', '.' and '-', so `<path:name>` is greedy: "prompts/a/b/versions/2/" is version 2 of
# "a/b". The routes with a fixed tail come before the prompt page; a prompt whose own name ends like one of those
# tails ("x/diff") is still reached: the sub-page views fall back to the prompt named by the whole path.
urlpatterns = [
    path("", views.index, name="index"),
    # Providers, models and prices
    path("providers/", views.provider_list, name="providers"),
    path("providers/<int:pk>/", views.provider_detail, name="provider"),
    path("providers/<int:pk>/test/", views.provider_test, name="provider-test"),
    path("providers/<int:pk>/<slug:action>/", views.provider_action, name="provider-action"),
    path("prices/", views.price_list, name="prices"),
    path("prices/lookup/", views.price_lookup, name="price-lookup"),
    # Prompts
    path("prompts/", views.prompt_list, name="prompts"),
    path("prompts/<path:name>/versions/<int:version>/", views.prompt_version, name="prompt-version"),
    path("prompts/<path:name>/diff/", views.prompt_diff, name="prompt-diff"),
    path("prompts/<path:name>/new-version/", views.prompt_new_version, name="prompt-new-version"),
    path("prompts/<path:name>/actions/<slug:action>/", views.prompt_action, name="prompt-action"),
    path("prompts/<path:name>/", views.prompt_detail, name="prompt"),
    # Datasets
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/import/", views.dataset_import, name="dataset-import"),
    path("datasets/<int:pk>/export/", views.dataset_export, name="dataset-export"),
    path("datasets/<int:pk>/delete/", views.dataset_delete, name="dataset-delete"),
    path("datasets/<int:pk>/items/<int:item>/", views.dataset_item, name="dataset-item"),
    path("datasets/<int:pk>/items/<int:item>/delete/", views.dataset_item_delete, name="dataset-item-delete"),
    # Production traces
    path("traces/", views.trace_list, name="traces"),
    path("traces/<str:trace_id>/", views.trace_detail, name="trace"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/<int:pk>/", views.session_detail, name="session"),
    path("users/", views.user_list, name="users"),
    path("users/<int:pk>/", views.user_detail, name="user"),
    path("dashboards/", views.dashboards, name="dashboards"),
    # Runs
    path("runs/", views.run_list, name="runs"),
    path("runs/new/", views.run_new, name="run-new"),
    path("runs/score/", views.run_score, name="run-score"),
    path("runs/compare/", views.compare, name="compare"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run-progress"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/export/", views.run_export, name="run-export"),
    # Online evaluators
    path("evaluators/", views.evaluator_list, name="evaluators"),
    path("evaluators/<int:pk>/", views.evaluator_detail, name="evaluator"),
    path("evaluators/<int:pk>/toggle/", views.evaluator_toggle, name="evaluator-toggle"),
    # Review: annotation queues, the keyboard review page, export into datasets
    path("review/", views.review_list, name="review"),
    path("review/add/", views.review_add, name="review-add"),
    path("review/export/", views.review_export, name="review-export"),
    path("review/<int:pk>/", views.review_queue, name="review-queue"),
    path("review/<int:pk>/next/", views.review_next, name="review-next"),
    path("review/<int:pk>/items/<int:item>/", views.review_item, name="review-item"),
    # Guardrails
    path("monitors/", views.monitor_list, name="monitors"),
    path("monitors/<int:pk>/", views.monitor_detail, name="monitor"),
    path("monitors/<int:pk>/delete/", views.monitor_delete, name="monitor-delete"),
    path("guardrails/", views.guardrail_list, name="guardrails"),
    path("guardrails/<int:pk>/", views.guardrail_detail, name="guardrail"),
    path("guardrails/<int:pk>/try/", views.guardrail_try, name="guardrail-try"),
    path("guardrails/<int:pk>/delete/", views.guardrail_delete, name="guardrail-delete"),
]
