"""The default correlation rule: one incident per alertname and service (falling back to job)."""

from django.db import migrations


def create_default(apps, schema_editor) -> None:
    CorrelationRule = apps.get_model("aiops", "CorrelationRule")
    CorrelationRule.objects.get_or_create(
        name="Default: alertname + service",
        defaults={"position": 1000, "matchers": [], "group_by": ["alertname", "service"], "window_minutes": 60},
    )


def remove_default(apps, schema_editor) -> None:
    apps.get_model("aiops", "CorrelationRule").objects.filter(name="Default: alertname + service").delete()


class Migration(migrations.Migration):
    dependencies = [("aiops", "0001_initial")]

    operations = [migrations.RunPython(create_default, remove_default)]
