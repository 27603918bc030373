"""Shared MLOps fixtures: a registered model with versions, made through the services like a user would."""

from __future__ import annotations

import pytest

from mlops import services


@pytest.fixture
def make_model(operator):
    def make(name: str = "churn", versions: int = 2, actor=None, **fields):
        model = services.create_model(name=name, actor=actor or operator, **fields)
        for i in range(versions):
            services.create_version(
                model=model,
                actor=actor or operator,
                source=f"s3://models/{name}/{i + 1}",
                metrics={"auc": 0.80 + i / 100, "f1": 0.70 + i / 50},
                params={"max_depth": str(4 + i), "learning_rate": "0.1"},
            )
        return model

    return make


@pytest.fixture
def churn(make_model):
    return make_model()
