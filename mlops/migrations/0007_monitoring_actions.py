from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("mlops", "0006_monitoring_data")]

    operations = [
        # History lines of monitoring: breaches opened and resolved, retraining webhooks called and answered.
        migrations.AlterField(
            model_name="versionevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("model_created", "Model Created"),
                    ("model_updated", "Model Updated"),
                    ("model_renamed", "Model Renamed"),
                    ("version_created", "Version Created"),
                    ("version_updated", "Version Updated"),
                    ("stage_changed", "Stage Changed"),
                    ("alias_set", "Alias Set"),
                    ("alias_deleted", "Alias Deleted"),
                    ("tag_set", "Tag Set"),
                    ("tag_deleted", "Tag Deleted"),
                    ("artifact_uploaded", "Artifact Uploaded"),
                    ("approval_requested", "Approval Requested"),
                    ("approved", "Approved"),
                    ("rejected", "Rejected"),
                    ("cancelled", "Cancelled"),
                    ("breach_opened", "Breach Opened"),
                    ("breach_resolved", "Breach Resolved"),
                    ("retraining", "Retraining"),
                ],
                max_length=30,
            ),
        ),
    ]
