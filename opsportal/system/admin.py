from django.contrib import admin

from .models import TaskCounter, TaskProbe, WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "pid", "online", "last_seen_at", "started_at", "concurrency"]
    readonly_fields = ["hostname", "pid", "queues", "concurrency", "started_at", "last_seen_at", "online"]


@admin.register(TaskCounter)
class TaskCounterAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "count", "updated_at"]
    list_filter = ["state"]


@admin.register(TaskProbe)
class TaskProbeAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "created_at", "completed_at", "worker", "requested_by"]
    list_filter = ["status"]
