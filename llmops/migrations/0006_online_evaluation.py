"""Online evaluation, feedback and review: score configs, evaluators, annotation queues and their items, scores."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("llmops", "0005_guardrails"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Evaluator",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                ("scorers", models.JSONField(default=list)),
                ("filter", models.JSONField(blank=True, default=dict)),
                (
                    "sampling_rate",
                    models.FloatField(default=1.0, help_text="0 to 1: the share of matching traces scored."),
                ),
                ("enabled", models.BooleanField(default=True)),
                (
                    "cursor",
                    models.BigIntegerField(default=0, help_text="The id of the last span this evaluator looked at."),
                ),
                ("spans_seen", models.BigIntegerField(default=0)),
                ("spans_scored", models.BigIntegerField(default=0)),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "judge_model",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="llmops.llmmodel",
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="ScoreConfig",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                (
                    "data_type",
                    models.CharField(
                        choices=[("numeric", "Numeric"), ("categorical", "Categorical"), ("boolean", "Boolean")],
                        default="numeric",
                        max_length=12,
                    ),
                ),
                ("min_value", models.FloatField(blank=True, help_text="Numeric: the lowest value allowed.", null=True)),
                (
                    "max_value",
                    models.FloatField(blank=True, help_text="Numeric: the highest value allowed.", null=True),
                ),
                (
                    "categories",
                    models.JSONField(blank=True, default=list, help_text="Categorical: the values allowed, in order."),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="AnnotationQueue",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                (
                    "filter",
                    models.JSONField(
                        blank=True, default=dict, help_text="Trace search keys (service, model, status ...)."
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("score_configs", models.ManyToManyField(blank=True, related_name="queues", to="llmops.scoreconfig")),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="AnnotationItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("trace_id", models.CharField(max_length=32)),
                ("span_id", models.CharField(blank=True, default="", max_length=16)),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("done", "Done"), ("skipped", "Skipped")],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("claimed_until", models.DateTimeField(blank=True, null=True)),
                ("reviewed_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "added_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "claimed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "reviewed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "queue",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="items", to="llmops.annotationqueue"
                    ),
                ),
            ],
            options={
                "ordering": ["queue_id", "id"],
                "indexes": [models.Index(fields=["queue", "status", "id"], name="llmops_annotation_next")],
                "constraints": [
                    models.UniqueConstraint(fields=("queue", "trace_id"), name="llmops_annotation_item_once")
                ],
            },
        ),
        migrations.CreateModel(
            name="Score",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("trace_id", models.CharField(max_length=32)),
                (
                    "span_id",
                    models.CharField(
                        blank=True, default="", help_text="Empty: the score is the trace's.", max_length=16
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                (
                    "data_type",
                    models.CharField(
                        choices=[("numeric", "Numeric"), ("categorical", "Categorical"), ("boolean", "Boolean")],
                        default="numeric",
                        max_length=12,
                    ),
                ),
                ("value", models.FloatField(blank=True, null=True)),
                ("string_value", models.CharField(blank=True, default="", max_length=200)),
                (
                    "source",
                    models.CharField(
                        choices=[("evaluator", "Evaluator"), ("feedback", "Feedback"), ("human", "Human")],
                        max_length=10,
                    ),
                ),
                ("passed", models.BooleanField(blank=True, help_text="Evaluators: the scorer's verdict.", null=True)),
                ("comment", models.TextField(blank=True, default="")),
                (
                    "end_user",
                    models.CharField(blank=True, default="", help_text="Feedback: the end user's id.", max_length=200),
                ),
                ("model", models.CharField(blank=True, default="", max_length=200)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        help_text="The reviewer, or the API token's user for feedback.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "evaluator",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="scores",
                        to="llmops.evaluator",
                    ),
                ),
                (
                    "prompt_version",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="scores",
                        to="llmops.promptversion",
                    ),
                ),
                (
                    "queue",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="scores",
                        to="llmops.annotationqueue",
                    ),
                ),
                (
                    "config",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="scores",
                        to="llmops.scoreconfig",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["trace_id", "span_id"], name="llmops_score_trace"),
                    models.Index(fields=["name", "-created_at"], name="llmops_score_name_time"),
                    models.Index(fields=["evaluator", "-created_at"], name="llmops_score_evaluator_time"),
                    models.Index(fields=["prompt_version", "name", "created_at"], name="llmops_score_version_time"),
                    models.Index(fields=["model", "name", "created_at"], name="llmops_score_model_time"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("evaluator__isnull", False)),
                        fields=("evaluator", "span_id", "name"),
                        name="llmops_score_evaluator_once",
                    )
                ],
            },
        ),
    ]
