"""Demo data for `manage.py seed_demo`: a living model registry.

Everything goes through the real services (history, audit log and all), so the
demo looks exactly like a registry that data scientists used: models with several
versions, metrics and parameters, a model card, an approved promotion, a pending
one, an alias, and a rollback.
"""

from __future__ import annotations

import random

from django.contrib.auth.models import User
from django.db import transaction

from . import services
from .models import RegisteredModel

MODEL_CARD = """## Intended use
Scores each active customer's probability of cancelling in the next 30 days, for the retention team's
weekly outreach list. Not for pricing or credit decisions.

## Limitations
- Trained on customers with at least 60 days of history; new customers get a low-confidence score.
- Under-represents the enterprise segment (4% of training rows).

## Evaluation data
Hold-out of 120,000 customers from March-May; metrics below are on that hold-out.

| Segment | AUC | Recall@10% |
|---|---|---|
| Consumer | 0.91 | 0.47 |
| SMB | 0.88 | 0.41 |
"""

MODELS = [
    # name, team, description, approval policy, framework, metric ranges
    ("churn-classifier", "growth", "Predicts **customer churn** within 30 days.", True, "xgboost",
     {"auc": (0.84, 0.92), "f1": (0.61, 0.70), "precision": (0.66, 0.74)}),
    ("fraud-detector", "risk", "Flags card transactions for manual review.", True, "lightgbm",
     {"auc": (0.95, 0.985), "recall_at_1pct_fpr": (0.55, 0.71)}),
    ("search-ranker", "search", "Learning-to-rank model for product search.", False, "pytorch",
     {"ndcg_at_10": (0.41, 0.49), "mrr": (0.33, 0.40)}),
    ("demand-forecast", "supply", "Daily demand per SKU and warehouse.", False, "prophet",
     {"mape": (0.18, 0.11), "rmse": (41.0, 29.0)}),
]  # fmt: skip


CHANGES = ["more data", "new features", "tuned depth", "class weights"]


@transaction.atomic
def seed(*, scientist: User, admin: User) -> bool:
    """Create the demo registry once; returns False when it is already there."""
    if RegisteredModel.objects.filter(name="churn-classifier").exists():
        return False
    rng = random.Random(7)
    for name, team, description, policy, framework, metric_ranges in MODELS:
        model = services.create_model(
            name=name,
            actor=scientist,
            description=description,
            owner_team=team,
            tags={"team": team, "task": "forecasting" if "forecast" in name else "classification"},
            approval_required=policy,
            protected_aliases=["champion"] if policy else [],
        )
        count = 4 if policy else 3
        for number in range(1, count + 1):
            progress = number / count
            metrics = {
                key: round(low + (high - low) * progress + rng.uniform(-0.004, 0.004), 4)
                for key, (low, high) in metric_ranges.items()
            }
            run_id = f"{rng.getrandbits(64):016x}"
            services.create_version(
                model=model,
                actor=scientist,
                source=f"s3://ml-models/{name}/{run_id}/model" if number % 2 else f"runs:/{run_id}/model",
                run_id=run_id,
                run_link=f"https://mlflow.example.com/#/experiments/3/runs/{run_id}",
                framework=framework,
                params={"learning_rate": str(round(0.1 / number, 3)), "max_depth": str(4 + number),
                        "n_estimators": str(200 * number)},
                metrics=metrics,
                dataset=f"s3://datasets/{name}/train-2026-{number + 5:02d}.parquet",
                code_version=f"{rng.getrandbits(28):07x}",
                model_card=MODEL_CARD if name == "churn-classifier" else "",
                description=f"Retrained with {CHANGES[number - 1]}.",
                tags={"validated": "yes" if number < count else "pending"},
            )  # fmt: skip
        versions = {v.version: v for v in model.versions.all()}
        services.transition_stage(version=versions[count - 1], stage="Staging", actor=scientist)
        if policy:
            # An approved promotion (v2 went live) and a pending one (v3 waits for an admin).
            first = services.transition_stage(version=versions[2], stage="Production", actor=scientist).request
            services.approve(request=first, actor=admin, comment="Hold-out metrics reviewed; fairness check passed.")
            services.set_alias(model=model, alias="candidate", version=versions[count], actor=scientist)
            services.transition_stage(
                version=versions[3], stage="Production", actor=scientist, reason="AUC +0.02 on the hold-out."
            )
        else:
            services.transition_stage(version=versions[1], stage="Production", actor=scientist)
            services.transition_stage(version=versions[2], stage="Production", actor=scientist, archive_existing=True)
            services.rollback(model=model, to_version=versions[1], actor=admin, reason="Latency regression")
    return True
