"""Production traces (issue 15): spans, traces, sessions and end users (llmops/models/traces.py).

The span table is created here in SQL (its model is unmanaged): on PostgreSQL partitioned by day of
`start_time` (`llmops_span_pYYYYMMDD`, yesterday to two days ahead here; `llmops.tasks` keeps them ahead
and drops those past LLMOPS_TRACES_RETENTION_DAYS) and written with COPY (llmops/traces/store.py).
Its indexes: the trace id (a trace page reads its spans), BRIN on the start time and the id (rows
arrive in time order), generations by model and time, spans linked to a prompt version, error spans
by time, and a GIN index (jsonb_path_ops, containment) on the attributes no column took, so unknown
attributes stay searchable; its pending list is 16 MB (entries merged in bulk, as for log bodies).
Lists and filters read the trace table (one row per trace) and its B-tree indexes, plus a GIN index
on the models a trace used. On SQLite the span table is a plain table.
"""

import datetime
from decimal import Decimal

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PG_TABLE = """
CREATE SEQUENCE llmops_span_id_seq AS bigint;
CREATE TABLE llmops_span (
    id bigint NOT NULL DEFAULT nextval('llmops_span_id_seq'),
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    duration_ms double precision NOT NULL DEFAULT 0,
    trace_id varchar(32) NOT NULL,
    span_id varchar(16) NOT NULL,
    parent_span_id varchar(16) NOT NULL DEFAULT '',
    name varchar(500) NOT NULL,
    kind varchar(10) NOT NULL DEFAULT 'internal',
    service varchar(200) NOT NULL,
    status varchar(5) NOT NULL DEFAULT 'unset',
    status_message text NOT NULL DEFAULT '',
    operation varchar(50) NOT NULL DEFAULT '',
    provider varchar(100) NOT NULL DEFAULT '',
    model varchar(200) NOT NULL DEFAULT '',
    request_model varchar(200) NOT NULL DEFAULT '',
    input_tokens integer,
    output_tokens integer,
    cache_read_tokens integer,
    cache_write_tokens integer,
    reasoning_tokens integer,
    cost numeric(18, 8),
    time_to_first_token_ms double precision,
    session_key varchar(200) NOT NULL DEFAULT '',
    user_key varchar(200) NOT NULL DEFAULT '',
    prompt_name varchar(200) NOT NULL DEFAULT '',
    prompt_version_number integer,
    prompt_version_id bigint,
    input text NOT NULL DEFAULT '',
    output text NOT NULL DEFAULT '',
    input_truncated boolean NOT NULL DEFAULT false,
    output_truncated boolean NOT NULL DEFAULT false,
    parameters jsonb NOT NULL DEFAULT '{}',
    attributes jsonb NOT NULL DEFAULT '{}',
    events jsonb NOT NULL DEFAULT '[]',
    resource jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (start_time);
ALTER SEQUENCE llmops_span_id_seq OWNED BY llmops_span.id;
CREATE INDEX llmops_span_trace ON llmops_span (trace_id);
CREATE INDEX llmops_span_start ON llmops_span USING brin (start_time);
CREATE INDEX llmops_span_id ON llmops_span USING brin (id);
CREATE INDEX llmops_span_model_time ON llmops_span (model, start_time) WHERE model <> '';
CREATE INDEX llmops_span_prompt_version ON llmops_span (prompt_version_id, start_time)
    WHERE prompt_version_id IS NOT NULL;
CREATE INDEX llmops_span_errors ON llmops_span (start_time) WHERE status = 'error';
CREATE INDEX llmops_span_attributes ON llmops_span USING gin (attributes jsonb_path_ops)
    WITH (gin_pending_list_limit = 16384);
"""

SQLITE_TABLE = [
    "CREATE TABLE llmops_span (id integer PRIMARY KEY AUTOINCREMENT, start_time datetime NOT NULL, "
    "end_time datetime NOT NULL, duration_ms real NOT NULL DEFAULT 0, trace_id varchar(32) NOT NULL, "
    "span_id varchar(16) NOT NULL, parent_span_id varchar(16) NOT NULL DEFAULT '', name varchar(500) NOT NULL, "
    "kind varchar(10) NOT NULL DEFAULT 'internal', service varchar(200) NOT NULL, "
    "status varchar(5) NOT NULL DEFAULT 'unset', status_message text NOT NULL DEFAULT '', "
    "operation varchar(50) NOT NULL DEFAULT '', provider varchar(100) NOT NULL DEFAULT '', "
    "model varchar(200) NOT NULL DEFAULT '', request_model varchar(200) NOT NULL DEFAULT '', "
    "input_tokens integer, output_tokens integer, cache_read_tokens integer, cache_write_tokens integer, "
    "reasoning_tokens integer, cost decimal, time_to_first_token_ms real, "
    "session_key varchar(200) NOT NULL DEFAULT '', user_key varchar(200) NOT NULL DEFAULT '', "
    "prompt_name varchar(200) NOT NULL DEFAULT '', prompt_version_number integer, prompt_version_id bigint, "
    "input text NOT NULL DEFAULT '', output text NOT NULL DEFAULT '', "
    "input_truncated bool NOT NULL DEFAULT 0, output_truncated bool NOT NULL DEFAULT 0, "
    "parameters text NOT NULL DEFAULT '{}', attributes text NOT NULL DEFAULT '{}', "
    "events text NOT NULL DEFAULT '[]', resource text NOT NULL DEFAULT '{}')",
    "CREATE INDEX llmops_span_trace ON llmops_span (trace_id)",
    "CREATE INDEX llmops_span_start ON llmops_span (start_time)",
    "CREATE INDEX llmops_span_model_time ON llmops_span (model, start_time)",
    "CREATE INDEX llmops_span_prompt_version ON llmops_span (prompt_version_id, start_time)",
]


def create_span_table(apps, schema_editor) -> None:
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
            f"CREATE TABLE IF NOT EXISTS llmops_span_p{day:%Y%m%d} PARTITION OF llmops_span "
            f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')"
        )


def drop_span_table(apps, schema_editor) -> None:
    """Dropping the partitioned table drops its partitions (and the sequence it owns)."""
    schema_editor.execute("DROP TABLE IF EXISTS llmops_span")


def create_trace_model_index(apps, schema_editor) -> None:
    """The models a trace used, searched by containment (PostgreSQL; SQLite filters them by text)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX llmops_trace_model_names ON llmops_trace USING gin (model_names jsonb_path_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("llmops", "0003_provider_last_test")]

    operations = [
        migrations.CreateModel(
            name="Span",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("start_time", models.DateTimeField()),
                ("end_time", models.DateTimeField()),
                ("duration_ms", models.FloatField(default=0.0)),
                ("trace_id", models.CharField(max_length=32)),
                ("span_id", models.CharField(max_length=16)),
                (
                    "parent_span_id",
                    models.CharField(blank=True, default="", help_text="Empty for a root span.", max_length=16),
                ),
                ("name", models.CharField(max_length=500)),
                (
                    "kind",
                    models.CharField(
                        default="internal", help_text="internal, server, client, producer, consumer", max_length=10
                    ),
                ),
                ("service", models.CharField(max_length=200)),
                (
                    "status",
                    models.CharField(
                        choices=[("unset", "Unset"), ("ok", "Ok"), ("error", "Error")], default="unset", max_length=5
                    ),
                ),
                ("status_message", models.TextField(blank=True, default="")),
                (
                    "operation",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text="gen_ai.operation.name (chat, embeddings, execute_tool ...) or the OpenInference span kind.",
                        max_length=50,
                    ),
                ),
                (
                    "provider",
                    models.CharField(
                        blank=True, default="", help_text="gen_ai.provider.name / system.", max_length=100
                    ),
                ),
                (
                    "model",
                    models.CharField(
                        blank=True, default="", help_text="Response model, else request model.", max_length=200
                    ),
                ),
                ("request_model", models.CharField(blank=True, default="", max_length=200)),
                ("input_tokens", models.IntegerField(blank=True, null=True)),
                ("output_tokens", models.IntegerField(blank=True, null=True)),
                ("cache_read_tokens", models.IntegerField(blank=True, null=True)),
                ("cache_write_tokens", models.IntegerField(blank=True, null=True)),
                ("reasoning_tokens", models.IntegerField(blank=True, null=True)),
                ("cost", models.DecimalField(blank=True, decimal_places=8, help_text="USD.", max_digits=18, null=True)),
                ("time_to_first_token_ms", models.FloatField(blank=True, null=True)),
                ("session_key", models.CharField(blank=True, default="", max_length=200)),
                ("user_key", models.CharField(blank=True, default="", max_length=200)),
                ("prompt_name", models.CharField(blank=True, default="", max_length=200)),
                ("prompt_version_number", models.IntegerField(blank=True, null=True)),
                (
                    "prompt_version",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="llmops.promptversion",
                    ),
                ),
                ("input", models.TextField(blank=True, default="")),
                ("output", models.TextField(blank=True, default="")),
                ("input_truncated", models.BooleanField(default=False)),
                ("output_truncated", models.BooleanField(default=False)),
                (
                    "parameters",
                    models.JSONField(blank=True, default=dict, help_text="temperature, max_tokens, top_p ..."),
                ),
                ("attributes", models.JSONField(blank=True, default=dict)),
                ("events", models.JSONField(blank=True, default=list, help_text='[{"name", "time", "attributes"}]')),
                ("resource", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "db_table": "llmops_span",
                "ordering": ["start_time", "id"],
                "managed": False,
            },
        ),
        migrations.RunPython(create_span_table, drop_span_table),
        migrations.CreateModel(
            name="EndUser",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "external_id",
                    models.CharField(help_text="The id the application sent.", max_length=200, unique=True),
                ),
                ("first_seen", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen", models.DateTimeField(default=django.utils.timezone.now)),
                ("generations", models.BigIntegerField(default=0)),
                ("input_tokens", models.BigIntegerField(default=0)),
                ("output_tokens", models.BigIntegerField(default=0)),
                ("cost", models.DecimalField(decimal_places=8, default=Decimal("0"), help_text="USD.", max_digits=18)),
            ],
            options={
                "ordering": ["-last_seen"],
                "indexes": [models.Index(fields=["-last_seen"], name="llmops_enduser_last_seen")],
            },
        ),
        migrations.CreateModel(
            name="Session",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "key",
                    models.CharField(help_text="The conversation or session id sent.", max_length=200, unique=True),
                ),
                ("service", models.CharField(blank=True, max_length=200)),
                ("first_seen", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen", models.DateTimeField(default=django.utils.timezone.now)),
                ("generations", models.BigIntegerField(default=0)),
                ("input_tokens", models.BigIntegerField(default=0)),
                ("output_tokens", models.BigIntegerField(default=0)),
                ("cost", models.DecimalField(decimal_places=8, default=Decimal("0"), help_text="USD.", max_digits=18)),
                (
                    "end_user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="sessions",
                        to="llmops.enduser",
                    ),
                ),
            ],
            options={
                "ordering": ["-last_seen"],
            },
        ),
        migrations.CreateModel(
            name="Trace",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("trace_id", models.CharField(help_text="32 lower-case hex digits.", max_length=32, unique=True)),
                (
                    "name",
                    models.CharField(
                        blank=True, help_text="The root span's name (empty until it arrives).", max_length=500
                    ),
                ),
                ("service", models.CharField(blank=True, help_text="The root span's service.name.", max_length=200)),
                ("start_time", models.DateTimeField()),
                ("end_time", models.DateTimeField()),
                (
                    "latency_ms",
                    models.FloatField(default=0.0, help_text="From the first span's start to the last span's end."),
                ),
                ("spans", models.PositiveIntegerField(default=0)),
                ("generations", models.PositiveIntegerField(default=0, help_text="Spans with a model (LLM calls).")),
                ("errors", models.PositiveIntegerField(default=0, help_text="Spans with status ERROR.")),
                ("input_tokens", models.BigIntegerField(default=0)),
                ("output_tokens", models.BigIntegerField(default=0)),
                ("cost", models.DecimalField(decimal_places=8, default=Decimal("0"), help_text="USD.", max_digits=18)),
                ("model", models.CharField(blank=True, help_text="The first generation's model.", max_length=200)),
                (
                    "model_names",
                    models.JSONField(blank=True, default=list, help_text="Every model its generations used."),
                ),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "end_user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="traces",
                        to="llmops.enduser",
                    ),
                ),
                (
                    "prompt_version",
                    models.ForeignKey(
                        blank=True,
                        help_text="From opsportal.prompt.name / opsportal.prompt.version of its first linked generation.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="traces",
                        to="llmops.promptversion",
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="traces",
                        to="llmops.session",
                    ),
                ),
            ],
            options={
                "ordering": ["-start_time", "-id"],
            },
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["-last_seen"], name="llmops_session_last_seen"),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["end_user", "-last_seen"], name="llmops_session_user"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["-start_time"], name="llmops_trace_start"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["service", "-start_time"], name="llmops_trace_service"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["model", "-start_time"], name="llmops_trace_model"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["session", "-start_time"], name="llmops_trace_session"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["end_user", "-start_time"], name="llmops_trace_user"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["prompt_version", "-start_time"], name="llmops_trace_prompt_version"),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                condition=models.Q(("errors__gt", 0)), fields=["-start_time"], name="llmops_trace_errors"
            ),
        ),
        migrations.RunPython(create_trace_model_index, migrations.RunPython.noop),
    ]
