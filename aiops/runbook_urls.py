"""Runbook pages (under /aiops/runbooks/; names in the aiops namespace, `runbook...`)."""

from django.urls import path

from .views import runbooks

urlpatterns = [
    path("", runbooks.runbook_list, name="runbooks"),
    path("new/", runbooks.runbook_edit, name="runbook_new"),
    path("kill-switch/", runbooks.runbook_kill_switch, name="runbook_kill_switch"),
    path("<int:pk>/", runbooks.runbook_detail, name="runbook"),
    path("<int:pk>/edit/", runbooks.runbook_edit, name="runbook_edit"),
    path("<int:pk>/delete/", runbooks.runbook_delete, name="runbook_delete"),
    path("runs/<int:pk>/", runbooks.runbook_run, name="runbook_run"),
    path("runs/<int:pk>/<slug:action>/", runbooks.runbook_run_action, name="runbook_run_action"),
    path("incident/<int:pk>/", runbooks.incident_runbooks, name="incident_runbooks"),
]
