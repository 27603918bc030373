"""Runbooks, their runs and steps (issue 13). Filled in as the models land; kept in this order so the migrations stay linear."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0015_logs"),
    ]

    operations = [
        migrations.AlterField(
            model_name="incidentevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("opened", "Opened"),
                    ("alert_firing", "Alert firing"),
                    ("alert_resolved", "Alert resolved"),
                    ("status", "Status changed"),
                    ("assigned", "Assigned"),
                    ("severity", "Severity changed"),
                    ("comment", "Comment"),
                    ("merged", "Merged"),
                    ("split", "Alert split out"),
                    ("notification", "Notification"),
                    ("runbook", "Runbook"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="Runbook",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                ("enabled", models.BooleanField(default=True)),
                (
                    "steps",
                    models.JSONField(default=list, help_text="The steps, in order (see docs/aiops.md, Runbooks)."),
                ),
                (
                    "trigger_mode",
                    models.CharField(
                        choices=[
                            ("manual", "Manual only"),
                            ("run", "Run automatically"),
                            ("approval", "Run after approval"),
                            ("dry-run", "Dry run (render and record, send nothing)"),
                        ],
                        default="manual",
                        max_length=10,
                    ),
                ),
                (
                    "match",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text='Labels an alert of the incident must carry, e.g. {"service": "api"}.',
                    ),
                ),
                (
                    "window_minutes",
                    models.PositiveIntegerField(
                        default=15,
                        help_text="A run counts as a remediation if the incident resolves within this time of its end.",
                    ),
                ),
                ("max_concurrent_runs", models.PositiveSmallIntegerField(default=1)),
                ("max_runs_per_hour", models.PositiveSmallIntegerField(default=6)),
                ("secrets_encrypted", models.JSONField(blank=True, default=dict, editable=False)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="RunbookRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("mode", models.CharField(help_text="run, approval or dry-run", max_length=10)),
                (
                    "trigger",
                    models.CharField(
                        choices=[("manual", "Manual"), ("automatic", "Automatic")], default="manual", max_length=10
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("awaiting_approval", "Awaiting approval"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                (
                    "current_step",
                    models.PositiveSmallIntegerField(default=0, help_text="Position of the step to run next."),
                ),
                ("steps", models.JSONField(default=list)),
                ("values", models.JSONField(blank=True, default=dict)),
                ("cancel_requested", models.BooleanField(default=False)),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("remediated", models.BooleanField(blank=True, null=True)),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "incident",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="runbook_runs", to="aiops.incident"
                    ),
                ),
                (
                    "runbook",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="aiops.runbook"
                    ),
                ),
                (
                    "started_by",
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
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="RunbookStepRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveSmallIntegerField()),
                ("name", models.CharField(max_length=100)),
                ("kind", models.CharField(max_length=10)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("awaiting_approval", "Awaiting approval"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("skipped", "Skipped"),
                            ("dry_run", "Dry run (not sent)"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("duration_ms", models.PositiveIntegerField(blank=True, null=True)),
                ("request", models.JSONField(blank=True, default=dict)),
                ("response", models.JSONField(blank=True, default=dict)),
                ("extracted", models.JSONField(blank=True, default=dict)),
                ("error", models.TextField(blank=True)),
                (
                    "detail",
                    models.CharField(blank=True, help_text="What a wait step is waiting for, say.", max_length=300),
                ),
                ("due_at", models.DateTimeField(blank=True, null=True)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="step_runs", to="aiops.runbookrun"
                    ),
                ),
            ],
            options={
                "ordering": ["run", "position"],
            },
        ),
        migrations.CreateModel(
            name="RunbookCall",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "target",
                    models.TextField(blank=True, help_text="Where it goes: a URL (or, for email, the addresses)."),
                ),
                ("event", models.CharField(help_text="Sent as X-OpsPortal-Event.", max_length=30)),
                (
                    "payload",
                    models.JSONField(blank=True, default=dict, help_text="The JSON document sent (the last one sent)."),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed")],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("response_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("delivery_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("method", models.CharField(default="POST", max_length=10)),
                (
                    "headers_encrypted",
                    models.TextField(blank=True, help_text="The rendered headers (they may hold secrets)."),
                ),
                (
                    "body_encrypted",
                    models.TextField(blank=True, help_text="The rendered body, encrypted (it may hold secrets)."),
                ),
                (
                    "expect_status",
                    models.JSONField(blank=True, default=list, help_text="Accepted statuses; empty = any 2xx."),
                ),
                ("timeout_seconds", models.PositiveSmallIntegerField(default=10)),
                ("response_body", models.TextField(blank=True)),
                (
                    "step",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="call", to="aiops.runbooksteprun"
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="RunbookSwitch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("killed", models.BooleanField(default=False)),
                ("changed_at", models.DateTimeField(blank=True, null=True)),
                ("reason", models.CharField(blank=True, max_length=300)),
                (
                    "changed_by",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="runbook",
            index=models.Index(condition=models.Q(("enabled", True)), fields=["trigger_mode"], name="runbook_auto_idx"),
        ),
        migrations.AddIndex(
            model_name="runbookrun",
            index=models.Index(fields=["runbook", "-created_at"], name="runbookrun_runbook_idx"),
        ),
        migrations.AddIndex(
            model_name="runbookrun",
            index=models.Index(fields=["incident", "-created_at"], name="runbookrun_incident_idx"),
        ),
        migrations.AddIndex(
            model_name="runbookrun",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "running"])),
                fields=["created_at"],
                name="runbookrun_active_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="runbookrun",
            index=models.Index(
                condition=models.Q(("remediated__isnull", True), ("status", "succeeded")),
                fields=["finished_at"],
                name="runbookrun_verify_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="runbooksteprun",
            constraint=models.UniqueConstraint(fields=("run", "position"), name="runbookstep_one_per_position"),
        ),
        migrations.AddIndex(
            model_name="runbookcall",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["created_at"], name="runbookcall_pending_idx"
            ),
        ),
    ]
