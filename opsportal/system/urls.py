from django.urls import path

from . import views

app_name = "system"

urlpatterns = [
    path("", views.system_page, name="page"),
    path("probe/", views.send_probe, name="probe"),
]
