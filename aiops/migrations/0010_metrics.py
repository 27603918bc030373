"""Metric collection: targets, sources, watched queries, series, threshold rules; samples and rollups.

Samples and rollups are created here in SQL (their models are unmanaged): on PostgreSQL, tables
partitioned by range of time (samples by day, rollups by month) with the partitions around today,
after which `aiops.tasks.collect_partitions` keeps them ahead; on SQLite, plain tables.
"""

import datetime

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PG_TABLES = """
CREATE TABLE aiops_sample (
    series_id bigint NOT NULL,
    time timestamptz NOT NULL,
    value double precision
) PARTITION BY RANGE (time);
CREATE INDEX aiops_sample_series_time ON aiops_sample (series_id, time);
CREATE TABLE aiops_rollup5m (
    series_id bigint NOT NULL,
    bucket timestamptz NOT NULL,
    min_value double precision,
    max_value double precision,
    sum_value double precision,
    count integer NOT NULL,
    first_value double precision,
    last_value double precision,
    increase double precision
) PARTITION BY RANGE (bucket);
CREATE UNIQUE INDEX aiops_rollup5m_series_bucket ON aiops_rollup5m (series_id, bucket);
CREATE INDEX aiops_series_labels_gin ON aiops_series USING gin (labels jsonb_path_ops);
"""

SQLITE_TABLES = [
    "CREATE TABLE aiops_sample (series_id integer NOT NULL, time datetime NOT NULL, value real)",
    "CREATE INDEX aiops_sample_series_time ON aiops_sample (series_id, time)",
    "CREATE TABLE aiops_rollup5m (series_id integer NOT NULL, bucket datetime NOT NULL, min_value real, "
    "max_value real, sum_value real, count integer NOT NULL, first_value real, last_value real, increase real)",
    "CREATE UNIQUE INDEX aiops_rollup5m_series_bucket ON aiops_rollup5m (series_id, bucket)",
]


def create_sample_tables(apps, schema_editor) -> None:
    """The two big tables; on PostgreSQL with the daily sample partitions from yesterday to three days ahead
    and the monthly rollup partitions of this month and the next."""
    if schema_editor.connection.vendor != "postgresql":
        for statement in SQLITE_TABLES:
            schema_editor.execute(statement)
        return
    schema_editor.execute(PG_TABLES)
    today = datetime.datetime.now(datetime.UTC).date()
    for offset in range(-1, 4):
        day = today + datetime.timedelta(days=offset)
        following = day + datetime.timedelta(days=1)
        schema_editor.execute(
            f"CREATE TABLE IF NOT EXISTS aiops_sample_p{day:%Y%m%d} PARTITION OF aiops_sample "
            f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')"
        )
    month = today.replace(day=1)
    for _ in range(2):
        following = (month + datetime.timedelta(days=32)).replace(day=1)
        schema_editor.execute(
            f"CREATE TABLE IF NOT EXISTS aiops_rollup5m_p{month:%Y%m} PARTITION OF aiops_rollup5m "
            f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')"
        )
        month = following


def drop_sample_tables(apps, schema_editor) -> None:
    """Dropping a partitioned table drops its partitions."""
    schema_editor.execute("DROP TABLE IF EXISTS aiops_sample")
    schema_editor.execute("DROP TABLE IF EXISTS aiops_rollup5m")


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0009_checks"),
    ]

    operations = [
        migrations.CreateModel(
            name="Rollup5m",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "series_id", "bucket", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("series_id", models.BigIntegerField()),
                ("bucket", models.DateTimeField()),
                ("min_value", models.FloatField(null=True)),
                ("max_value", models.FloatField(null=True)),
                ("sum_value", models.FloatField(null=True)),
                ("count", models.IntegerField()),
                ("first_value", models.FloatField(null=True)),
                ("last_value", models.FloatField(null=True)),
                ("increase", models.FloatField(null=True)),
            ],
            options={
                "db_table": "aiops_rollup5m",
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Sample",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "series_id", "time", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("series_id", models.BigIntegerField()),
                ("time", models.DateTimeField()),
                ("value", models.FloatField(null=True)),
            ],
            options={
                "db_table": "aiops_sample",
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="PromSource",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                (
                    "base_url",
                    models.CharField(help_text="The API's root, e.g. http://prometheus:9090", max_length=2000),
                ),
                ("timeout_seconds", models.FloatField(default=30.0)),
                (
                    "auth",
                    models.CharField(
                        choices=[
                            ("none", "None"),
                            ("bearer", "Bearer token"),
                            ("basic", "Basic (user name and password)"),
                        ],
                        default="none",
                        max_length=10,
                    ),
                ),
                ("username", models.CharField(blank=True, max_length=200)),
                (
                    "secret_encrypted",
                    models.TextField(blank=True, editable=False, help_text="Bearer token or password, encrypted."),
                ),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="RollupCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("done_until", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="ThresholdRule",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("selector", models.TextField(help_text='A series selector, e.g. up{job="node"}')),
                ("comparison", models.CharField(choices=[("above", "Above"), ("below", "Below")], max_length=10)),
                ("value", models.FloatField()),
                ("for_seconds", models.PositiveIntegerField(default=0)),
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
                ("service", models.CharField(blank=True, max_length=200)),
                ("description", models.TextField(blank=True)),
                ("enabled", models.BooleanField(default=True)),
                (
                    "state",
                    models.CharField(
                        choices=[("ok", "OK"), ("pending", "Pending"), ("firing", "Firing")],
                        default="ok",
                        editable=False,
                        max_length=10,
                    ),
                ),
                ("last_evaluated_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_error", models.TextField(blank=True, editable=False)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="ScrapeTarget",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("interval_seconds", models.PositiveIntegerField(default=60)),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("next_due_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
                ("last_ok", models.BooleanField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("last_duration_seconds", models.FloatField(blank=True, null=True)),
                ("last_sample_count", models.PositiveIntegerField(blank=True, null=True)),
                ("name", models.CharField(max_length=100, unique=True)),
                ("url", models.CharField(max_length=2000)),
                ("timeout_seconds", models.FloatField(default=10.0)),
                (
                    "auth",
                    models.CharField(
                        choices=[
                            ("none", "None"),
                            ("bearer", "Bearer token"),
                            ("basic", "Basic (user name and password)"),
                        ],
                        default="none",
                        max_length=10,
                    ),
                ),
                ("username", models.CharField(blank=True, max_length=200)),
                (
                    "secret_encrypted",
                    models.TextField(blank=True, editable=False, help_text="Bearer token or password, encrypted."),
                ),
                ("labels", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "ordering": ["name"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("enabled", True)), fields=["next_due_at"], name="scrapetarget_due_idx"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Series",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=200)),
                ("labels", models.JSONField(default=dict)),
                (
                    "kind",
                    models.CharField(
                        blank=True, help_text="counter, gauge, histogram, ... when the source said.", max_length=20
                    ),
                ),
                ("hash", models.CharField(max_length=32, unique=True)),
                ("first_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name_plural": "series",
                "ordering": ["name", "id"],
                "indexes": [
                    models.Index(fields=["name"], name="series_name_idx"),
                    models.Index(fields=["last_seen_at"], name="series_last_seen_idx"),
                ],
            },
        ),
        migrations.CreateModel(
            name="ThresholdState",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("breached_since", models.DateTimeField()),
                ("firing", models.BooleanField(default=False)),
                ("value", models.FloatField()),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "rule",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="states", to="aiops.thresholdrule"
                    ),
                ),
                (
                    "series",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="threshold_states", to="aiops.series"
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("rule", "series"), name="thresholdstate_unique")],
            },
        ),
        migrations.CreateModel(
            name="WatchedQuery",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("interval_seconds", models.PositiveIntegerField(default=60)),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("next_due_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
                ("last_ok", models.BooleanField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("last_duration_seconds", models.FloatField(blank=True, null=True)),
                ("last_sample_count", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "name",
                    models.CharField(
                        help_text="The metric name its series are stored under.", max_length=200, unique=True
                    ),
                ),
                ("query", models.TextField()),
                ("step_seconds", models.PositiveIntegerField(default=60)),
                ("labels", models.JSONField(blank=True, default=dict)),
                ("last_end_at", models.DateTimeField(blank=True, help_text="The last step already stored.", null=True)),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="queries", to="aiops.promsource"
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("enabled", True)), fields=["next_due_at"], name="watchedquery_due_idx"
                    )
                ],
            },
        ),
        migrations.RunPython(create_sample_tables, drop_sample_tables),
    ]
