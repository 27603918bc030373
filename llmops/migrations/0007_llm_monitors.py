"""LLM monitors (issue 15): rules on production traces that open AIOps incidents, and their readings."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("llmops", "0006_online_evaluation"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="LLMMonitor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                (
                    "metric",
                    models.CharField(
                        choices=[
                            ("error_rate", "Error rate"),
                            ("p95_latency", "p95 latency (ms)"),
                            ("cost_per_hour", "Cost per hour (USD)"),
                            ("cost_per_day", "Cost per day (USD)"),
                            ("guard_violation_rate", "Guard violation rate"),
                            ("eval_pass_rate", "Online evaluation pass rate"),
                        ],
                        max_length=30,
                    ),
                ),
                (
                    "service",
                    models.CharField(blank=True, help_text="Traces and spans of this service only.", max_length=200),
                ),
                ("model", models.CharField(blank=True, help_text="Generations of this model only.", max_length=200)),
                (
                    "score_name",
                    models.CharField(
                        blank=True,
                        help_text="Evaluation pass rate: scores of this name only (empty: every score).",
                        max_length=100,
                    ),
                ),
                (
                    "window_minutes",
                    models.PositiveIntegerField(default=60, help_text="The value is computed over this window."),
                ),
                (
                    "comparison",
                    models.CharField(choices=[("above", "above"), ("below", "below")], default="above", max_length=5),
                ),
                (
                    "threshold",
                    models.FloatField(help_text="Rates as fractions (0.05 is 5 %), latency in ms, cost in USD."),
                ),
                (
                    "min_samples",
                    models.PositiveIntegerField(
                        default=10,
                        help_text="Rates and latency: fewer traces, calls or scores in the window is 'not enough data'.",
                    ),
                ),
                (
                    "severity",
                    models.CharField(
                        choices=[
                            ("critical", "Critical"),
                            ("error", "Error"),
                            ("warning", "Warning"),
                            ("info", "Info"),
                        ],
                        default="warning",
                        max_length=10,
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("new", "Not evaluated yet"),
                            ("ok", "OK"),
                            ("firing", "Firing"),
                            ("no_data", "Not enough data"),
                        ],
                        default="new",
                        max_length=10,
                    ),
                ),
                ("last_value", models.FloatField(blank=True, null=True)),
                ("last_samples", models.PositiveIntegerField(default=0)),
                ("last_evaluated_at", models.DateTimeField(blank=True, null=True)),
                ("state_since", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
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
                    "guard_policy",
                    models.ForeignKey(
                        blank=True,
                        help_text="Guard violation rate: this policy's calls only (empty: every policy).",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="monitors",
                        to="llmops.guardpolicy",
                    ),
                ),
                (
                    "prompt_version",
                    models.ForeignKey(
                        blank=True,
                        help_text="Generations linked to this prompt version only.",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="monitors",
                        to="llmops.promptversion",
                    ),
                ),
            ],
            options={
                "verbose_name": "LLM monitor",
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="LLMMonitorReading",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("value", models.FloatField(blank=True, help_text="Empty: not enough data.", null=True)),
                ("samples", models.PositiveIntegerField(default=0)),
                ("breached", models.BooleanField(default=False)),
                (
                    "monitor",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="readings", to="llmops.llmmonitor"
                    ),
                ),
            ],
            options={
                "ordering": ["-at", "-id"],
                "indexes": [models.Index(fields=["monitor", "-at"], name="llmops_monitor_reading_at")],
            },
        ),
    ]
