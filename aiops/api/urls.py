from django.urls import path
from rest_framework.routers import SimpleRouter

from opsportal.portal.api_views import AppApiRoot

app_name = "aiops"

router = SimpleRouter(trailing_slash=True)

urlpatterns = [path("", AppApiRoot.as_view(router=router, app_namespace="api:aiops"), name="root"), *router.urls]
