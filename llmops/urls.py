from django.urls import path

from . import views

app_name = "llmops"

urlpatterns = [path("", views.index, name="index")]
