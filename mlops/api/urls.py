from django.urls import path
from rest_framework.routers import SimpleRouter

from opsportal.portal.api_views import AppApiRoot

from . import views

app_name = "mlops"

router = SimpleRouter(trailing_slash=True)
router.register("models", views.RegisteredModelViewSet, basename="model")
router.register(r"models/(?P<model_name>[^/]+)/versions", views.ModelVersionViewSet, basename="version")
router.register("approvals", views.ApprovalRequestViewSet, basename="approval")
router.register("artifacts", views.ArtifactViewSet, basename="artifact")
router.register("webhooks", views.WebhookViewSet, basename="webhook")

urlpatterns = [path("", AppApiRoot.as_view(router=router, app_namespace="api:mlops"), name="root"), *router.urls]
