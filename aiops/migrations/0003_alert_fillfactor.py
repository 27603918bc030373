"""Leave free space in alert pages so a repeated alert is updated in place (HOT) on PostgreSQL."""

from django.db import migrations


def leave_room_for_hot_updates(apps, schema_editor) -> None:
    """Free space in each page lets PostgreSQL update repeated alerts in place (HOT)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE aiops_alert SET (fillfactor = 80)")


def default_fillfactor(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE aiops_alert RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("aiops", "0002_default_correlation_rule")]

    operations = [migrations.RunPython(leave_room_for_hot_updates, default_fillfactor)]
