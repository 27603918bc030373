from django.urls import re_path

from . import views

app_name = "mlflow_api"

urlpatterns = [
    re_path(r"^api/2\.0/mlflow/(?P<path>.*)$", views.endpoint, name="endpoint"),
    # Anything else below /mlflow/ answers in MLflow's error form too, never an HTML page.
    re_path(r"", views.unknown_endpoint, name="unknown"),
]
