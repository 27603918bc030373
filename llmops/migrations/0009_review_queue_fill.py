"""Queues keep filling from their filter (a cursor over trace ids, when they last filled) and evaluators look
again at the id ranges whose writers' transactions were still open when the cursor passed them.

Queues that exist already start their cursor at the newest trace stored: they were filled when made, and
the periodic filling goes on with the traces that arrive from now on (not the oldest ones first).
"""

from django.db import migrations, models


def start_cursors_at_the_newest_trace(apps, schema_editor) -> None:
    queue_model = apps.get_model("llmops", "AnnotationQueue")
    trace_model = apps.get_model("llmops", "Trace")
    newest = trace_model.objects.order_by("-id").values_list("id", flat=True).first() or 0
    queue_model.objects.update(fill_cursor=newest)


class Migration(migrations.Migration):
    dependencies = [("llmops", "0008_cache_prices_trace_indexes")]

    operations = [
        migrations.AddField(
            model_name="annotationqueue",
            name="fill_cursor",
            field=models.BigIntegerField(default=0, help_text="The id of the newest trace the filling looked at."),
        ),
        migrations.AddField(
            model_name="annotationqueue",
            name="last_fill_added",
            field=models.PositiveIntegerField(default=0, help_text="How many traces that fill added."),
        ),
        migrations.AddField(
            model_name="annotationqueue",
            name="last_filled_at",
            field=models.DateTimeField(blank=True, help_text="When the filling last ran.", null=True),
        ),
        migrations.AddField(
            model_name="evaluator",
            name="late_windows",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Id ranges passed while their writers' transactions may still have been open: "
                '[{"low", "high", "xmin", "fence", "at"}], looked at again until those transactions ended.',
            ),
        ),
        migrations.RunPython(start_cursors_at_the_newest_trace, migrations.RunPython.noop),
    ]
