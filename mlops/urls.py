from django.urls import path

from . import views

app_name = "mlops"

# Model names may hold dots, dashes and spaces but never '/', so `<path:name>` ends at the first literal
# segment below; the more specific routes come first.
urlpatterns = [
    path("", views.index, name="index"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<int:pk>/<slug:action>/", views.approval_action, name="approval_action"),
    path("webhooks/", views.webhook_list, name="webhooks"),
    path("webhooks/<int:pk>/<slug:action>/", views.webhook_action, name="webhook_action"),
    path(
        "models/<path:name>/versions/<int:version>/artifacts/<int:pk>/download/",
        views.artifact_download,
        name="artifact_download",
    ),
    path("models/<path:name>/versions/<int:version>/", views.version_detail, name="version"),
    path("models/<path:name>/versions/<int:version>/<slug:action>/", views.version_action, name="version_action"),
    path("models/<path:name>/compare/", views.compare, name="compare"),
    path("models/<path:name>/monitoring/batches/<int:pk>/report.html", views.batch_download, name="batch_download"),
    path("models/<path:name>/monitoring/batches/<int:pk>/", views.batch_report, name="batch"),
    path("models/<path:name>/monitoring/actions/<slug:action>/", views.monitoring_action, name="monitoring_action"),
    path("models/<path:name>/monitoring/", views.monitoring, name="monitoring"),
    path("models/<path:name>/actions/<slug:action>/", views.model_action, name="model_action"),
    path("models/<path:name>/", views.model_detail, name="model"),
]
