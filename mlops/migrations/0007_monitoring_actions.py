from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("mlops", "0006_monitoring_data")]

    operations = []
