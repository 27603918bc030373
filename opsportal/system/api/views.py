from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services


class SystemStatusView(APIView):
    """Workers, queue depths and periodic tasks, as on the system page."""

    @extend_schema(
        responses=inline_serializer(
            "SystemStatus",
            {
                "database": serializers.DictField(),
                "broker": serializers.DictField(),
                "queues": serializers.DictField(child=serializers.IntegerField(allow_null=True)),
                "workers": serializers.ListField(child=serializers.DictField()),
                "periodic_tasks": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "database": services.run_check(services.check_database),
                "broker": services.run_check(services.check_broker),
                "queues": services.queue_depths(),
                "workers": [
                    {
                        "hostname": w.hostname,
                        "online": w.online,
                        "last_seen_at": w.last_seen_at,
                        "queues": w.queues,
                        "concurrency": w.concurrency,
                    }
                    for w in services.workers()
                ],
                "periodic_tasks": [
                    {
                        "name": t.name,
                        "task": t.task,
                        "enabled": t.enabled,
                        "schedule": t.schedule,
                        "last_run_at": t.last_run_at,
                        "next_run_at": t.next_run_at,
                        "total_run_count": t.total_run_count,
                    }
                    for t in services.periodic_tasks()
                ],
            }
        )
