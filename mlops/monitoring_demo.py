"""Demo monitoring for `manage.py seed_demo`: the churn model in Production watched for three weeks.

A reference of 3,000 training rows, then one batch of production rows a day for 21 days. From day 11 the
customers change (higher monthly spend, more support tickets, more customers on the basic plan) and the
model's accuracy falls: the dataset-drift check breaches, which raises an MLOps alert that becomes an AIOps
incident, and the accuracy check follows. Everything goes through the real services.
"""

from __future__ import annotations

import datetime
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.contrib.auth.models import User
from django.utils import timezone

from . import aiops_bridge as aiops_services
from . import services
from .models import MonitorCheck, RegisteredModel
from .services.monitor_checks import evaluate_batch, save_check

DAYS = 21
DRIFT_FROM_DAY = 11
REFERENCE_ROWS = 3000
BATCH_ROWS = 600
PLANS = ["basic", "pro", "enterprise"]
REGIONS = ["emea", "amer", "apac"]


def customers(rng: np.random.Generator, rows: int, *, drift: float, start: datetime.datetime) -> pa.Table:
    """Rows of the churn model's inputs, prediction and (true) target; `drift` in [0, 1] shifts them."""
    tenure = rng.gamma(2.0, 180.0, rows).round()
    spend = rng.lognormal(3.6 + 0.35 * drift, 0.45, rows).round(2)
    tickets = rng.poisson(1.2 + 2.5 * drift, rows)
    plan_p = np.array([0.45, 0.4, 0.15]) * (1 - drift) + np.array([0.75, 0.2, 0.05]) * drift
    plan = rng.choice(PLANS, rows, p=plan_p)
    region = rng.choice(REGIONS, rows, p=[0.4, 0.4, 0.2])
    # The model learnt churn from tenure and tickets; in the drifted months spend drives churn as well.
    logit = -1.2 - tenure / 400 + 0.55 * tickets + drift * (spend - 40) / 12
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    learnt = -1.2 - tenure / 400 + 0.55 * tickets
    score = 1 / (1 + np.exp(-learnt))
    prediction = (score > 0.5).astype(np.int64)
    seconds = np.sort(rng.uniform(0, 86_400, rows))
    times = [start + datetime.timedelta(seconds=float(s)) for s in seconds]
    return pa.table(
        {
            "id": [f"c-{start:%m%d}-{i}" for i in range(rows)],
            "timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
            "tenure_days": tenure,
            "monthly_spend": spend,
            "support_tickets": tickets,
            "plan": plan,
            "region": region,
            "prediction": prediction,
            "target": target,
        }
    )


def parquet_file(table: pa.Table, name: str) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    buffer.name = name
    return buffer


def seed(*, scientist: User, admin: User) -> bool:
    """Create the churn model's monitor with three weeks of batches once; False when it is there already."""
    model = RegisteredModel.objects.filter(name="churn-classifier").first()
    if model is None or model.monitors.exists():
        return False
    rng = np.random.default_rng(14)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - datetime.timedelta(days=DAYS)
    monitor = services.create_monitor(
        model=model,
        actor=admin,
        name="production",
        description="Daily scoring batches of the retention job, with churn outcomes joined after 30 days.",
    )
    reference = customers(rng, REFERENCE_ROWS, drift=0.0, start=first_day - datetime.timedelta(days=60))
    services.upload_reference(
        monitor=monitor, actor=scientist, file=parquet_file(reference, "churn-train-2026-06.parquet"), name=""
    )
    save_check(
        monitor=monitor,
        actor=admin,
        name="Dataset drift",
        kind=MonitorCheck.Kind.DATASET_DRIFT,
        severity="error",
    )
    save_check(
        monitor=monitor, actor=admin, name="Accuracy at least 0.70", kind=MonitorCheck.Kind.METRIC,
        rule="accuracy", bound=0.70,
    )  # fmt: skip
    save_check(
        monitor=monitor, actor=admin, name="monthly_spend missing under 5 %", kind=MonitorCheck.Kind.QUALITY,
        column="monthly_spend", rule="missing_share", bound=0.05,
    )  # fmt: skip
    for day in range(DAYS):
        drift = 0.0 if day < DRIFT_FROM_DAY else min(1.0, 0.35 + 0.1 * (day - DRIFT_FROM_DAY))
        table = customers(rng, BATCH_ROWS, drift=drift, start=first_day + datetime.timedelta(days=day))
        batch = services.record_batch(
            monitor=monitor, table=table, source="parquet", name=f"scores-{table['timestamp'][0].as_py():%Y-%m-%d}"
        )
        evaluate_batch(batch=batch)
    # The breaches' alerts become incidents now rather than when a worker next drains them.
    aiops_services.process_pending_alerts()
    return True
