from django.urls import path
from rest_framework.routers import SimpleRouter

from opsportal.portal.api_views import AppApiRoot

from . import monitor_actions, monitoring, views

app_name = "mlops"

router = SimpleRouter(trailing_slash=True)
router.register("models", views.RegisteredModelViewSet, basename="model")
router.register(r"models/(?P<model_name>[^/]+)/versions", views.ModelVersionViewSet, basename="version")
router.register("approvals", views.ApprovalRequestViewSet, basename="approval")
router.register("artifacts", views.ArtifactViewSet, basename="artifact")
router.register("webhooks", views.WebhookViewSet, basename="webhook")
router.register("monitors", monitoring.MonitorViewSet, basename="monitor")
router.register("batches", monitoring.BatchViewSet, basename="batch")
router.register(r"monitors/(?P<monitor_id>\d+)/checks", monitor_actions.MonitorCheckViewSet, basename="monitor-check")
router.register("breaches", monitor_actions.BreachViewSet, basename="breach")
router.register("retraining-hooks", monitor_actions.RetrainingHookViewSet, basename="retraining-hook")

urlpatterns = [
    path("", AppApiRoot.as_view(router=router, app_namespace="api:mlops"), name="root"),
    path("models/<str:name>/predictions/", monitoring.PredictionsView.as_view(), name="model-predictions"),
    path("models/<str:name>/labels/", monitoring.LabelsView.as_view(), name="model-labels"),
    *router.urls,
]
