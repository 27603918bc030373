"""Fewer indexes on llmops_trace, which every export writes (issue 15: ingest speed).

- The single-column indexes of `session_id`, `end_user_id` and `prompt_version_id` go: the composite
  (x, start_time DESC) indexes of the trace list begin with the same column, so they answer the
  filters and the SET NULL of a deleted session, end user or prompt version as well.
- The `varchar_pattern_ops` index Django adds beside the unique index of `trace_id` goes: trace ids
  are looked up by equality only (the unique index), never with LIKE.
"""

import django.db.models.deletion
from django.db import migrations, models

LIKE_INDEX = "llmops_trace_trace_id_c04bd8e5_like"


def drop_like(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def create_like(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} ON llmops_trace (trace_id varchar_pattern_ops)")


class Migration(migrations.Migration):
    dependencies = [("llmops", "0009_review_queue_fill")]

    operations = [
        migrations.AlterField(
            model_name="trace",
            name="session",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="traces",
                to="llmops.session",
            ),
        ),
        migrations.AlterField(
            model_name="trace",
            name="end_user",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="traces",
                to="llmops.enduser",
            ),
        ),
        migrations.AlterField(
            model_name="trace",
            name="prompt_version",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="traces",
                to="llmops.promptversion",
                help_text="From opsportal.prompt.name / opsportal.prompt.version of its first linked generation.",
            ),
        ),
        migrations.RunPython(drop_like, create_like, elidable=False),
    ]
