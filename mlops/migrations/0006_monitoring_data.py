from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("mlops", "0005_monitoring")]

    operations = [
        migrations.AddField(
            model_name="monitor",
            name="score_column",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddIndex(
            model_name="predictionrecord",
            index=models.Index(fields=["model", "timestamp"], name="prediction_window_idx"),
        ),
        migrations.AddIndex(
            model_name="predictionrecord",
            index=models.Index(fields=["model", "received_at"], name="prediction_received_idx"),
        ),
    ]
