"""Log records, templates and their state (issue 13). Filled in as the models land; kept in this order so the migrations stay linear.

The record table is created here in SQL (its model is unmanaged): on PostgreSQL partitioned by day
(`aiops_logrecord_pYYYYMMDD`, yesterday to two days ahead; `aiops.tasks.maintain_logs` keeps them
ahead and drops those past LOGS_RETENTION_DAYS), with a GIN index on to_tsvector('simple', body) for
full-text search (new entries wait in a 16 MB pending list, merged in bulk: a third more ingest
than the default 4 MB), B-trees for time, service and template (each with time) and for the
error and critical records' time (the rare severities; the others are most rows), a BRIN index on
the id (ids grow with time: a record page finds its row in a few block ranges) and none on the
attributes (a GIN index there cost a sixth of the ingest rate; attribute filters are applied within
the other filters' rows); on SQLite a plain table.
"""

import datetime

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PG_TABLE = """
CREATE SEQUENCE aiops_logrecord_id_seq AS bigint;
CREATE TABLE aiops_logrecord (
    id bigint NOT NULL DEFAULT nextval('aiops_logrecord_id_seq'),
    time timestamptz NOT NULL,
    service varchar(200) NOT NULL,
    severity varchar(10) NOT NULL,
    body text NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}',
    trace_id varchar(32) NOT NULL DEFAULT '',
    span_id varchar(16) NOT NULL DEFAULT '',
    template_id bigint
) PARTITION BY RANGE (time);
ALTER SEQUENCE aiops_logrecord_id_seq OWNED BY aiops_logrecord.id;
CREATE INDEX aiops_logrecord_time ON aiops_logrecord (time);
CREATE INDEX aiops_logrecord_id ON aiops_logrecord USING brin (id);
CREATE INDEX aiops_logrecord_service_time ON aiops_logrecord (service, time);
CREATE INDEX aiops_logrecord_severity_time ON aiops_logrecord (severity, time) WHERE severity IN ('error', 'critical');
CREATE INDEX aiops_logrecord_template_time ON aiops_logrecord (template_id, time);
CREATE INDEX aiops_logrecord_trace ON aiops_logrecord (trace_id) WHERE trace_id <> '';
CREATE INDEX aiops_logrecord_body_fts ON aiops_logrecord USING gin (to_tsvector('simple', body))
    WITH (gin_pending_list_limit = 16384);
"""

SQLITE_TABLE = [
    "CREATE TABLE aiops_logrecord (id integer PRIMARY KEY AUTOINCREMENT, time datetime NOT NULL, "
    "service varchar(200) NOT NULL, severity varchar(10) NOT NULL, body text NOT NULL, "
    "attributes text NOT NULL DEFAULT '{}', trace_id varchar(32) NOT NULL DEFAULT '', "
    "span_id varchar(16) NOT NULL DEFAULT '', template_id bigint)",
    "CREATE INDEX aiops_logrecord_time ON aiops_logrecord (time)",
    "CREATE INDEX aiops_logrecord_service_time ON aiops_logrecord (service, time)",
    "CREATE INDEX aiops_logrecord_severity_time ON aiops_logrecord (severity, time)",
    "CREATE INDEX aiops_logrecord_template_time ON aiops_logrecord (template_id, time)",
    "CREATE INDEX aiops_logrecord_trace ON aiops_logrecord (trace_id)",
]


def create_record_table(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        for statement in SQLITE_TABLE:
            schema_editor.execute(statement)
        return
    schema_editor.execute(PG_TABLE)
    today = datetime.datetime.now(datetime.UTC).date()
    for offset in range(-1, 3):
        day = today + datetime.timedelta(days=offset)
        following = day + datetime.timedelta(days=1)
        schema_editor.execute(
            f"CREATE TABLE IF NOT EXISTS aiops_logrecord_p{day:%Y%m%d} PARTITION OF aiops_logrecord "
            f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')"
        )


def drop_record_table(apps, schema_editor) -> None:
    """Dropping the partitioned table drops its partitions (and the sequence it owns)."""
    schema_editor.execute("DROP TABLE IF EXISTS aiops_logrecord")


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0014_pair_lag_help"),
    ]

    operations = [
        migrations.CreateModel(
            name="LogRecord",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("time", models.DateTimeField()),
                ("service", models.CharField(max_length=200)),
                ("severity", models.CharField(max_length=10)),
                ("body", models.TextField()),
                ("attributes", models.JSONField(default=dict)),
                ("trace_id", models.CharField(blank=True, default="", max_length=32)),
                ("span_id", models.CharField(blank=True, default="", max_length=16)),
                ("template_id", models.BigIntegerField(null=True)),
            ],
            options={
                "db_table": "aiops_logrecord",
                "ordering": ["-time", "-id"],
                "managed": False,
            },
        ),
        migrations.RunPython(create_record_table, drop_record_table),
        migrations.CreateModel(
            name="LogMinerState",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("service", models.CharField(max_length=200, unique=True)),
                ("state", models.BinaryField()),
                ("version", models.PositiveBigIntegerField(default=0)),
                ("clusters", models.PositiveIntegerField(default=0)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["service"],
            },
        ),
        migrations.AlterField(
            model_name="integration",
            name="kind",
            field=models.CharField(
                choices=[
                    ("alertmanager", "Prometheus Alertmanager"),
                    ("grafana", "Grafana alerting"),
                    ("pagerduty", "PagerDuty Events API v2"),
                    ("generic", "Generic JSON"),
                    ("logs", "Logs (OTLP, Loki push, JSON lines)"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="LogTemplate",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("service", models.CharField(max_length=200)),
                ("cluster_id", models.PositiveIntegerField(help_text="drain3's cluster id in this service's miner.")),
                ("template", models.TextField()),
                ("severity", models.CharField(default="info", help_text="The highest severity seen.", max_length=10)),
                ("count", models.BigIntegerField(default=0)),
                ("first_seen", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen", models.DateTimeField(default=django.utils.timezone.now)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("error_alerted_at", models.DateTimeField(blank=True, null=True)),
                ("baseline_rate", models.FloatField(default=0.0)),
                ("baseline_until", models.DateTimeField(blank=True, null=True)),
                ("bursting_since", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["-last_seen"],
                "indexes": [
                    models.Index(fields=["service", "-last_seen"], name="logtemplate_service_idx"),
                    models.Index(fields=["-last_seen"], name="logtemplate_last_seen_idx"),
                    models.Index(fields=["-first_seen"], name="logtemplate_first_seen_idx"),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("service", "cluster_id"), name="logtemplate_service_cluster")
                ],
            },
        ),
        migrations.CreateModel(
            name="LogTemplateBucket",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("minute", models.DateTimeField()),
                ("count", models.PositiveIntegerField(default=0)),
                (
                    "template",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="buckets", to="aiops.logtemplate"
                    ),
                ),
            ],
            options={
                "ordering": ["template", "minute"],
                "indexes": [models.Index(fields=["minute"], name="logtemplatebucket_minute_idx")],
                "constraints": [
                    models.UniqueConstraint(fields=("template", "minute"), name="logtemplatebucket_minute")
                ],
            },
        ),
    ]
