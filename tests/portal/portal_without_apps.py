"""Run as a script under tests.portal.settings_without_apps: migrate, then walk the core pages as an admin.

Prints one JSON line: the status of each page, the navigation entries and the overview cards.
"""

import json
import re

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
call_command("seed_demo", verbosity=0)

from django.contrib.auth.models import User  # noqa: E402

from opsportal.celery import installed_schedule  # noqa: E402
from opsportal.registry import portal_apps  # noqa: E402

admin = User.objects.create_superuser("root", "root@example.com", "pw")
client = Client()
client.force_login(admin)
statuses = {}
for path in ["/", "/api/v1/", "/api/schema/", "/audit/", "/system/", "/aiops/", "/mlops/", "/llmops/", "/mlflow/"]:
    statuses[path] = client.get(path).status_code
overview = client.get("/").content.decode()
root = client.get("/api/v1/").json()
print(
    json.dumps(
        {
            "statuses": statuses,
            "nav": re.findall(r'class="nav-link[^"]*"[^>]*href="/(\w+)/"', overview),
            "api_root": sorted(root),
            "schedule": sorted(installed_schedule()),
            "apps": [app.label for app in portal_apps()],
        }
    )
)
