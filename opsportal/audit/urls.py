from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.entry_list, name="list"),
    path("<str:app_label>/<str:model>/<str:object_id>/", views.object_history, name="history"),
]
