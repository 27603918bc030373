from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("mlops", "0005_monitoring")]

    operations = []
