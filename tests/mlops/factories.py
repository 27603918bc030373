"""MLOps test data, made through the services as people make it (so every row has its history and audit entry)."""

from __future__ import annotations

from mlops import services
from mlops.models import ModelVersion, RegisteredModel, Stage, Webhook


def registered_model(*, actor, name: str = "churn", versions: int = 2, **fields) -> RegisteredModel:
    """A model with `versions` versions, each with a source, params (max_depth 4, 5, ...) and metrics.

    Version n has auc 0.80 + (n-1)/100 and f1 0.70 + (n-1)/50; `fields` as `create_model` takes them.
    """
    model = services.create_model(name=name, actor=actor, **fields)
    for i in range(versions):
        model_version(
            model=model,
            actor=actor,
            source=f"s3://models/{name}/{i + 1}",
            metrics={"auc": 0.80 + i / 100, "f1": 0.70 + i / 50},
            params={"max_depth": str(4 + i), "learning_rate": "0.1"},
        )
    return model


def model_version(*, model: RegisteredModel, actor, source: str = "s3://models/x", **fields) -> ModelVersion:
    """The model's next version; `fields` as `create_version` takes them (metrics, params, tags ...)."""
    return services.create_version(model=model, actor=actor, source=source, **fields)


def guarded_model(*, actor, admin, name: str = "fraud") -> RegisteredModel:
    """A model with an approval policy: version 1 is in Production (moved by `admin`), version 2 is new."""
    model = registered_model(actor=actor, name=name)
    services.transition_stage(version=version(model, 1), stage=Stage.PRODUCTION, actor=admin)
    return services.update_model(model=model, actor=admin, approval_required=True)


def webhook(*, actor, url: str, name: str = "ci", **fields) -> tuple[Webhook, str]:
    """A registry webhook and its signing secret; `fields` as `create_webhook` takes them (events, model)."""
    return services.create_webhook(name=name, url=url, actor=actor, **fields)


def version(model: RegisteredModel, number: int) -> ModelVersion:
    """The model's version `number`, as stored now."""
    return ModelVersion.objects.get(model=model, version=number)


def stages(model: RegisteredModel) -> dict[int, str]:
    """Each version number of the model with its stage, as stored now."""
    return dict(ModelVersion.objects.filter(model=model).values_list("version", "stage"))
