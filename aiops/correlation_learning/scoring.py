"""Features of an (alert, incident) pair, their logistic combination, and the reason in words.

Pure Python, no database: `grouping` builds the profiles and `memory` supplies the history.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# Labels that name one alert instance rather than what failed: they never match another alert.
INSTANCE_LABELS = frozenset({
    "alertname", "severity", "instance", "pod", "pod_name", "container", "container_id", "uid", "id",
    "fingerprint", "check_id", "endpoint", "replica",
})  # fmt: skip

# Logistic weights over the features, tuned on bench/bench_correlation.py's generated history.
BIAS = -5.0
WEIGHTS = {
    "labels": 3.0,
    "title": 2.5,
    "time": 2.0,
    "history": 7.0,
    "same_alert": 5.0,
    "together": 3.0,
    "apart": -4.0,
}
JOIN_THRESHOLD = 0.6
SUGGEST_THRESHOLD = 0.3
# Smoothing of "fired together n of N times": a Beta(0.1, 3) prior, so one coincidence is weak evidence.
PRIOR_TOGETHER, PRIOR_APART = 0.1, 3.0

_WORD = re.compile(r"[a-z0-9]+")


def signature(labels: dict[str, str], title: str, service: str) -> str:
    """What kind of alert this is, across its instances: alertname and service."""
    name = labels.get("alertname") or title
    return f"{name} on {labels.get('service') or service}"[:200]


def label_tokens(labels: dict[str, str]) -> frozenset[str]:
    return frozenset(f"{k}={v}" for k, v in labels.items() if k not in INSTANCE_LABELS and v)


def title_grams(title: str) -> dict[str, int]:
    """Character 3-grams of each word, padded like scikit-learn's `char_wb` analyser, with counts."""
    grams: dict[str, int] = {}
    for word in _WORD.findall(title.lower()):
        padded = f" {word} "
        for i in range(len(padded) - 2):
            gram = padded[i : i + 3]
            grams[gram] = grams.get(gram, 0) + 1
    return grams


def title_words(title: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(title.lower()) if len(w) >= 3 and not w.isdigit())


class Idf:
    """Inverse document frequencies over the alerts a batch looks at (its own and the candidates')."""

    def __init__(self) -> None:
        self.df: dict[str, int] = {}
        self.n = 0
        self.cache: dict[str, float] = {}

    def add(self, tokens: object) -> None:
        self.n += 1
        df = self.df
        for token in tokens:  # type: ignore[attr-defined]
            df[token] = df.get(token, 0) + 1

    def add_many(self, tokens: tuple[str, ...], count: int) -> None:
        """`add(tokens)` `count` times."""
        self.n += count
        df = self.df
        for token in tokens:
            df[token] = df.get(token, 0) + count

    def weight(self, token: str) -> float:
        """The token's IDF; once read, fixed for the batch (later alerts of the batch do not shift it)."""
        found = self.cache.get(token)
        if found is None:
            found = self.cache[token] = math.log((1 + self.n) / (1 + self.df.get(token, 0))) + 1.0
        return found


def tfidf(grams: dict[str, int], idf: Idf) -> dict[str, float]:
    """L2-normalised TF-IDF vector (sublinear tf) of a title's 3-grams."""
    vector = {g: (1.0 + math.log(c)) * idf.weight("g:" + g) for g, c in grams.items()}
    norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
    return {g: v / norm for g, v in vector.items()}


def smoothed_rate(hits: float, trials: float) -> float:
    return (hits + PRIOR_TOGETHER) / (trials + PRIOR_TOGETHER + PRIOR_APART)


@dataclass
class History:
    """What memory knows about one pair of signatures (decayed counts)."""

    cofired: float = 0.0
    lag_seconds: float = 0.0  # summed, signed: when b fired minus when a fired (a < b)
    together: float = 0.0
    apart: float = 0.0


@dataclass(slots=True)
class Evidence:
    """The features of one (alert, incident) pair, and what each one points at, for the reason."""

    labels: float = 0.0
    shared_labels: list[str] = field(default_factory=list)
    title: float = 0.0
    time: float = 0.0
    gap_seconds: float = 0.0
    history: float = 0.0
    # (alert signature, other signature, their History, fired counts): the words are made only for the
    # pair that is reported (see `history_text`), not for every candidate scored.
    history_of: tuple | None = None
    same_alert: float = 0.0
    together: float = 0.0
    apart: float = 0.0
    feedback_text: str = ""

    @property
    def history_text(self) -> str:
        if self.history_of is None:
            return ""
        found = history_evidence(*self.history_of)
        return found[1] if found else ""

    def confidence(self) -> float:
        w = WEIGHTS
        z = (
            BIAS
            + w["labels"] * self.labels
            + w["title"] * self.title
            + w["time"] * self.time
            + w["history"] * self.history
            + w["same_alert"] * self.same_alert
            + w["together"] * self.together
            + w["apart"] * self.apart
        )
        return 1.0 / (1.0 + math.exp(-z))

    def reason(self) -> str:
        """The strongest pieces of evidence, in words, strongest first."""
        parts: list[tuple[float, str]] = []
        history_text = self.history_text
        if history_text:
            parts.append((WEIGHTS["history"] * self.history, history_text))
        if self.same_alert >= 0.5:
            parts.append((WEIGHTS["same_alert"] * self.same_alert, "the same alert is already in it"))
        if self.feedback_text:
            parts.append((WEIGHTS["together"] * self.together - WEIGHTS["apart"] * self.apart, self.feedback_text))
        if self.shared_labels and self.labels >= 0.15:
            shown = ", ".join(self.shared_labels[:3])
            parts.append((WEIGHTS["labels"] * self.labels, f"shares {shown} ({self.labels:.0%} of its label weight)"))
        if self.title >= 0.3:
            parts.append((WEIGHTS["title"] * self.title, f"similar title ({self.title:.0%})"))
        parts.sort(key=lambda p: -p[0])
        words = [text for _, text in parts[:3]]
        words.append(f"{describe_gap(self.gap_seconds)} its nearest alert")
        return "; ".join(words)


def describe_gap(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"fired {seconds:.0f} s from"
    return f"fired {seconds / 60:.0f} min from"


def history_rate(alert_sig: str, other_sig: str, pair: History, fired: dict[str, float]) -> float:
    """The co-firing feature of two signatures: the likelier direction of "B fires when A does"
    (0 when they have hardly fired together)."""
    if pair.cofired < 0.5:
        return 0.0
    hits = pair.cofired
    mine, theirs = fired.get(alert_sig, 0.0), fired.get(other_sig, 0.0)
    given_mine = (min(hits, mine) + PRIOR_TOGETHER) / (mine + PRIOR_TOGETHER + PRIOR_APART) if mine else 0.0
    given_theirs = (min(hits, theirs) + PRIOR_TOGETHER) / (theirs + PRIOR_TOGETHER + PRIOR_APART) if theirs else 0.0
    return max(given_mine, given_theirs)


def history_evidence(
    alert_sig: str, other_sig: str, pair: History, fired: dict[str, float]
) -> tuple[float, str] | None:
    """The co-firing feature of two signatures (the likelier direction of "B fires when A does")
    and its reason, e.g. "fired within 40 s of db-down 11 of the last 12 times"."""
    if pair.cofired < 0.5:
        return None
    mine, theirs = fired.get(alert_sig, 0.0), fired.get(other_sig, 0.0)
    hits = pair.cofired
    given_mine = smoothed_rate(min(hits, mine), mine) if mine else 0.0
    given_theirs = smoothed_rate(min(hits, theirs), theirs) if theirs else 0.0
    lag = abs(pair.lag_seconds) / hits
    within = f"{lag:.0f} s" if lag < 90 else f"{lag / 60:.0f} min"
    if given_mine >= given_theirs:
        text = f"fired within {within} of {other_sig} {round(min(hits, mine))} of the last {round(mine)} times"
        return given_mine, text
    count = round(min(hits, theirs))
    text = f"{other_sig} fired within {within} of it {count} of its last {round(theirs)} times"
    return given_theirs, text
