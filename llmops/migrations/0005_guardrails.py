import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("llmops", "0004_traces"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="GuardPolicy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                (
                    "direction",
                    models.CharField(
                        choices=[
                            ("input", "Input (to the model)"),
                            ("output", "Output (from the model)"),
                            ("both", "Input and output"),
                        ],
                        default="both",
                        max_length=10,
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        choices=[("block", "Block the text"), ("redact", "Redact what can be masked, block the rest")],
                        default="block",
                        max_length=10,
                    ),
                ),
                ("checks", models.JSONField(blank=True, default=list)),
                (
                    "record_text",
                    models.CharField(
                        choices=[
                            ("none", "No text"),
                            ("redacted", "The redacted text"),
                            ("raw", "The raw text (personal data included)"),
                        ],
                        default="redacted",
                        max_length=10,
                    ),
                ),
                (
                    "is_default",
                    models.BooleanField(default=False, help_text="Applied when a guard call names no policy."),
                ),
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
                    "judge_model",
                    models.ForeignKey(
                        blank=True,
                        help_text="Grades the policy's llm-rubric checks.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="guard_policies",
                        to="llmops.llmmodel",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "guard policies",
                "ordering": ["name"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("is_default", True)), fields=("is_default",), name="guardpolicy_one_default"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="GuardCall",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("policy_name", models.CharField(max_length=100)),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("direction", models.CharField(max_length=10)),
                ("allowed", models.BooleanField()),
                (
                    "redacted",
                    models.BooleanField(default=False, help_text="The answer's redacted_text differs from the text."),
                ),
                ("violations", models.JSONField(blank=True, default=list)),
                ("violated", models.PositiveIntegerField(default=0)),
                ("latency_ms", models.FloatField()),
                ("text_length", models.PositiveIntegerField(default=0)),
                ("text", models.TextField(blank=True)),
                ("trace_id", models.CharField(blank=True, max_length=32)),
                ("span_id", models.CharField(blank=True, max_length=16)),
                (
                    "policy",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="calls",
                        to="llmops.guardpolicy",
                    ),
                ),
                (
                    "user",
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
                "ordering": ["-at", "-id"],
                "indexes": [
                    models.Index(fields=["-at"], name="guardcall_at_idx"),
                    models.Index(fields=["policy", "-at"], name="guardcall_policy_at_idx"),
                ],
            },
        ),
    ]
