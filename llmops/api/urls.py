from django.urls import path
from rest_framework.routers import SimpleRouter

from opsportal.portal.api_views import AppApiRoot

app_name = "llmops"

router = SimpleRouter(trailing_slash=True)

urlpatterns = [path("", AppApiRoot.as_view(router=router, app_namespace="api:llmops"), name="root"), *router.urls]
