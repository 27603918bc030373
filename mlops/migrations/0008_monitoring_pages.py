from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("mlops", "0007_monitoring_actions")]

    operations = []
