"""Model performance from predictions and ground truth, through scikit-learn.

Pure computation on sequences of values: no models, no database. Every function answers a flat
``{metric name: float}`` dict (JSON-safe: a metric that is undefined on the data is left out, never NaN),
so a batch's, a window's and the reference's metrics are stored, compared and charted alike.

Classification: ``accuracy``, ``precision``, ``recall``, ``f1`` (macro averages over the classes seen in
the targets and predictions; for two classes the positive class's own values, as scikit-learn's binary
average), ``roc_auc`` and ``log_loss`` when scores are given (binary: the positive class's probability),
and per class ``precision[<class>]``, ``recall[<class>]``, ``f1[<class>]``, ``support[<class>]``.
Regression: ``mae``, ``rmse``, ``mape`` (rows with a zero target left out), ``r2`` (two rows or more),
``mean_error`` (prediction minus target: the bias). Both add ``rows``, the number of labelled rows used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Metrics where a smaller value is better (a check's bound is a ceiling for them, a floor for the others).
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss"})
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2", "mean_error")


def _label(value: object) -> str:
    """A class as one string, so 1, 1.0, "1" and True/"true" from JSON, CSV and Parquet are one class."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        lowered = value.strip()
        return lowered.lower() if lowered.lower() in {"true", "false"} else lowered
    return str(value)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items() if value is not None and math.isfinite(value)}


def positive_class(classes: Sequence[str]) -> str:
    """The positive class of a binary problem: "1" or "true" when present, else the last in sorted order."""
    for candidate in ("1", "true", "yes"):
        if candidate in classes:
            return candidate
    return sorted(classes)[-1]


def classification_metrics(
    targets: Sequence[object], predictions: Sequence[object], scores: Sequence[float | None] | None = None
) -> dict[str, float]:
    """Classification metrics of `predictions` against `targets` (rows where either is missing are left out).

    `scores`, when given, are the positive class's probabilities (binary problems only) for ROC AUC and
    log loss; rows without a score are left out of those two.
    """
    from sklearn import metrics as sk

    pairs = [
        (i, _label(t), _label(p)) for i, (t, p) in enumerate(zip(targets, predictions, strict=True))
        if t is not None and p is not None
    ]  # fmt: skip
    if not pairs:
        return {}
    index = [i for i, _, _ in pairs]
    y_true = np.array([t for _, t, _ in pairs], dtype=object)
    y_pred = np.array([p for _, _, p in pairs], dtype=object)
    classes = sorted(set(y_true) | set(y_pred))
    result: dict[str, float] = {"rows": float(len(pairs)), "accuracy": sk.accuracy_score(y_true, y_pred)}
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    if len(classes) == 2:
        positive = classes.index(positive_class(classes))
        result.update(precision=precision[positive], recall=recall[positive], f1=f1[positive])
    else:
        result.update(precision=float(np.mean(precision)), recall=float(np.mean(recall)), f1=float(np.mean(f1)))
    for i, name in enumerate(classes):
        result[f"precision[{name}]"] = precision[i]
        result[f"recall[{name}]"] = recall[i]
        result[f"f1[{name}]"] = f1[i]
        result[f"support[{name}]"] = float(support[i])
    if scores is not None:
        result.update(_score_metrics(y_true, [scores[i] for i in index], classes))
    return _finite(result)


def _score_metrics(y_true: np.ndarray, scores: list[float | None], classes: list[str]) -> dict[str, float]:
    """ROC AUC and log loss of a binary problem from the positive class's probabilities."""
    from sklearn import metrics as sk

    true_classes = sorted(set(y_true))
    if len(classes) != 2:
        return {}
    positive = positive_class(classes)
    kept = [(t == positive, float(s)) for t, s in zip(y_true, scores, strict=True) if s is not None]
    kept = [(t, s) for t, s in kept if math.isfinite(s)]
    if not kept:
        return {}
    truth = np.array([t for t, _ in kept], dtype=bool)
    probability = np.clip(np.array([s for _, s in kept], dtype=float), 0.0, 1.0)
    result: dict[str, float] = {"log_loss": sk.log_loss(truth, probability, labels=[False, True])}
    if len(true_classes) == 2 and truth.any() and not truth.all():
        result["roc_auc"] = sk.roc_auc_score(truth, probability)
    return result


def regression_metrics(targets: Sequence[object], predictions: Sequence[object]) -> dict[str, float]:
    """Regression metrics of `predictions` against `targets` (rows where either is missing or not a number
    are left out)."""
    from sklearn import metrics as sk

    pairs = []
    for t, p in zip(targets, predictions, strict=True):
        try:
            pair = (float(t), float(p))
        except (TypeError, ValueError):
            continue
        if math.isfinite(pair[0]) and math.isfinite(pair[1]):
            pairs.append(pair)
    if not pairs:
        return {}
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    result: dict[str, float] = {
        "rows": float(len(pairs)),
        "mae": sk.mean_absolute_error(y_true, y_pred),
        "rmse": math.sqrt(sk.mean_squared_error(y_true, y_pred)),
        "mean_error": float(np.mean(y_pred - y_true)),
    }
    nonzero = y_true != 0
    if nonzero.any():
        result["mape"] = sk.mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero])
    if len(pairs) >= 2 and np.ptp(y_true) > 0:
        result["r2"] = sk.r2_score(y_true, y_pred)
    return _finite(result)


def scores_from_predictions(targets: Sequence[object], predictions: Sequence[object]) -> list[float] | None:
    """The predictions themselves as scores when they are probabilities of a 0/1 target (floats in [0, 1],
    not all 0 or 1), so a model that logs its probability as the prediction gets ROC AUC and log loss."""
    true = {_label(t) for t in targets if t is not None}
    if not true or not true <= {"0", "1"}:
        return None
    values = []
    for p in predictions:
        if p is None:
            values.append(None)
            continue
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            return None
        values.append(float(p))
    present = [v for v in values if v is not None]
    if not present or all(v in (0.0, 1.0) for v in present):
        return None
    return values


def performance(
    task: str,
    targets: Sequence[object],
    predictions: Sequence[object],
    scores: Sequence[float | None] | None = None,
) -> dict[str, float]:
    """The metrics of `task` ("classification", "regression"; anything else: none).

    A classification whose predictions are probabilities of a 0/1 target (see `scores_from_predictions`) is
    scored at 0.5, and the probabilities give ROC AUC and log loss.
    """
    if task == "regression":
        return regression_metrics(targets, predictions)
    if task != "classification":
        return {}
    if scores is None:
        probabilities = scores_from_predictions(targets, predictions)
        if probabilities is not None:
            labels = [None if p is None else int(p >= 0.5) for p in probabilities]
            return classification_metrics(targets, labels, probabilities)
    return classification_metrics(targets, predictions, scores)
