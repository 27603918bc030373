from django.urls import path

from . import views

app_name = "mlops"

urlpatterns = [
    path("", views.index, name="index"),
    path("models/<path:name>/versions/<int:version>/", views.version_detail, name="version"),
    path("models/<path:name>/", views.model_detail, name="model"),
    path("approvals/", views.approvals, name="approvals"),
]
