"""Placing one batch of alerts under learned rules: candidates, scores, the decision and its reason."""

from __future__ import annotations

import bisect
import datetime
import itertools
import math
import operator
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from opsportal.bulk import binary_execute

from ..models import Alert, CorrelationRule, Incident, MergeSuggestion
from . import memory
from .memory import Memory
from .scoring import (
    BIAS,
    JOIN_THRESHOLD,
    SUGGEST_THRESHOLD,
    WEIGHTS,
    Evidence,
    Idf,
    history_rate,
    label_tokens,
    signature,
    tfidf,
    title_grams,
    title_words,
)

# A token (label pair, title word) shared by more incidents than this is too common to find candidates by.
MAX_POSTING = 40
MAX_MEMBERS_LOADED = 20_000
# Time proximity decays as exp(-gap / tau) with tau = the rule's window / TIME_DECAY_DIVISOR.
TIME_DECAY_DIVISOR = 6
CLOSENESS_FADE = 60.0
# Kinds whose mean offset is within this many seconds fire "at the same time": no order between them.
ORDER_SLACK = 30.0


def fire_time(alert: Alert) -> float:
    """When the alert fired, as epoch seconds: when OpsPortal first saw it."""
    return alert.first_seen_at.timestamp()


@dataclass(slots=True, eq=False)
class AlertKind:
    """What the alerts with the same labels, title and service share (replicas, recurrences, the same
    alert in every batch): worked out once, kept across batches."""

    sig: str
    tokens: frozenset[str]
    grams: dict[str, int]
    words: frozenset[str]
    text: str
    # What one such alert adds to a batch's IDF, and the index keys its candidates are found by.
    counted: tuple[str, ...]
    keys: tuple[str, ...]
    word_keys: tuple[str, ...] = ()


@dataclass(slots=True)
class AlertFeatures:
    sig: str
    tokens: frozenset[str]
    grams: dict[str, int]
    words: frozenset[str]
    at: float
    kind: AlertKind
    text: str = ""
    vector: dict[str, float] | None = None


# Kinds of alerts by (title, service, labels): bounded; read-only values.
_KINDS: dict[tuple, AlertKind] = {}
MAX_KINDS = 50_000


def _kind_of(labels: dict, title: str, service: str) -> AlertKind:
    try:
        key = (title, service, *labels.items())
        found = _KINDS.get(key)
    except TypeError:  # a label value that is a list or an object: not a key, worked out every time
        key, found = None, None
    if found is None:
        plain = {str(k): str(v) for k, v in labels.items()}
        plain.setdefault("service", service)
        text = f"{plain.get('alertname', '')} {title}"
        grams, words = title_grams(text), title_words(text)
        sig = signature(plain, title, service)
        tokens = label_tokens(plain)
        found = AlertKind(
            sig=sig,
            tokens=tokens,
            grams=grams,
            words=words,
            text=text,
            counted=(*("l:" + t for t in tokens), *("g:" + g for g in grams), *("w:" + w for w in words)),
            keys=(*tokens, *("w:" + w for w in words), "s:" + sig),
            word_keys=tuple("w:" + w for w in words),
        )
        if key is not None:
            if len(_KINDS) >= MAX_KINDS:
                _KINDS.clear()
            _KINDS[key] = found
    return found


def features_of(alert: Alert) -> AlertFeatures:
    kind = _kind_of(alert.labels, alert.title, alert.service)
    return AlertFeatures(kind.sig, kind.tokens, kind.grams, kind.words, fire_time(alert), kind, kind.text)


class Profile:
    """What an incident looks like to the learner: its alerts' labels, titles, kinds and times."""

    __slots__ = ("centroid", "incident", "norm", "rule_id", "sigs", "times", "tokens")

    def __init__(self, incident: Incident, rule_id: int) -> None:
        self.incident = incident
        self.rule_id = rule_id
        self.tokens: dict[str, int] = {}
        self.centroid: dict[str, float] = {}
        self.norm = 0.0
        self.sigs: dict[str, list[float]] = {}
        self.times: list[float] = []

    def add(self, f: AlertFeatures) -> None:
        if not self.times:  # the incident's first alert (most of them: copies, in the same order)
            self.tokens = dict.fromkeys(f.tokens, 1)
            self.centroid = dict(f.vector or {})
        else:
            tokens = self.tokens
            for token in f.tokens:
                tokens[token] = tokens.get(token, 0) + 1
            centroid = self.centroid
            for gram, value in (f.vector or {}).items():
                centroid[gram] = centroid.get(gram, 0.0) + value
        self.norm = 0.0  # worked out again when next read (`measure`): most profiles grow more than they are read
        bisect.insort(self.sigs.setdefault(f.sig, []), f.at)
        bisect.insort(self.times, f.at)

    def measure(self) -> float:
        """The centroid's norm (1 for an empty one), kept until the next `add`."""
        self.norm = math.sqrt(sum(v * v for v in self.centroid.values())) or 1.0
        return self.norm

    def gap(self, at: float) -> float:
        """Seconds between `at` and the incident's nearest alert."""
        return nearest_gap(self.times, at)


class Posting:
    """The profiles that have one index key, in the order they got it, with when they got it (the time
    of the alert that brought it); `ordered` while those times never went back, so they can be bisected."""

    __slots__ = ("ordered", "profiles", "times")

    def __init__(self) -> None:
        self.profiles: list[Profile] = []
        self.times: list[float] = []
        self.ordered = True

    def add(self, profile: Profile, at: float) -> None:
        if self.times and at < self.times[-1]:
            self.ordered = False
        self.profiles.append(profile)
        self.times.append(at)


def nearest_gap(times: list[float], at: float) -> float:
    """Seconds between `at` and the nearest of the sorted `times`."""
    return abs(at - nearest_time(times, at))


def nearest_time(times: list[float], at: float) -> float:
    """The nearest of the sorted `times` to `at` (infinity when there are none)."""
    i = bisect.bisect_left(times, at)
    if i == len(times):
        return times[-1] if times else math.inf
    if i == 0:
        return times[0]
    before, after = times[i - 1], times[i]
    return before if at - before <= after - at else after


def in_order(offset: float, usual: float) -> float:
    """How well `offset` (this alert's time minus the other's) fits `usual`, the mean offset
    history learned: a kind that usually fires well before the other (a database before the
    pages it slows) firing after it now is likely another failure."""
    if abs(usual) <= ORDER_SLACK or offset * usual >= 0:
        return 1.0
    return math.exp(-abs(offset - usual) / CLOSENESS_FADE)


def closeness(gap: float) -> float:
    """How much what is known about two kinds of alerts that fire together applies to these two
    alerts: fully within COFIRE_SECONDS of each other (what "together" means in memory), fading
    within a minute or two beyond (the same failure's alerts do not fire ten minutes apart)."""
    return 1.0 if gap <= memory.COFIRE_SECONDS else math.exp(-(gap - memory.COFIRE_SECONDS) / CLOSENESS_FADE)


@dataclass(slots=True)
class _AlertContext:
    """What scoring one alert against each candidate shares: its label weights (heaviest first)
    and its title vector as parallel lists."""

    weights: dict[str, float]
    total_weight: float
    ordered_tokens: list[str]
    grams: list[str]
    values: list[float]


# (history rate or None, usual offset, merged, split) of a pair of signatures; see `_pair_terms`.
_PairTerms = tuple[float | None, float, float, float]
_UNKNOWN = object()


@dataclass(slots=True)
class Decision:
    """Where an alert goes: `incident` to join (None: open a new one), with the best candidate's
    confidence and reason, and `suggest` when the best is worth a merge suggestion only."""

    incident: Incident | None
    confidence: float
    reason: str
    suggest: Incident | None = None


class LearnedGrouping:
    """The learner's view of one batch: candidate incidents, the IDF of what it sees, the memory."""

    def __init__(self, rules: list[CorrelationRule], now: datetime.datetime) -> None:
        self.rules = {r.pk: r for r in rules}
        self.now = now
        self.idf = Idf()
        self.profiles: dict[int, Profile] = {}
        self.index: dict[str, Posting] = {}
        self.memory = Memory(now)
        self.features: dict[int, AlertFeatures] = {}
        self.vectors: dict[str, dict[str, float]] = {}
        self.suggestions: dict[tuple[int, int], tuple[Incident, Incident, float, str]] = {}
        self.contexts: dict[AlertKind, _AlertContext] = {}
        self.partner_keys: dict[str, tuple[str, ...]] = {}
        self.uncounted: dict[AlertKind, int] = {}

    @classmethod
    def for_batch(cls, alerts: list[Alert], rules: list[CorrelationRule], now: datetime.datetime):
        """The learner for this batch, or None when no learned rule is enabled."""
        learned = [r for r in rules if r.enabled and r.kind == CorrelationRule.Kind.LEARNED]
        if not learned:
            return None
        memory.learn_from_feedback()
        grouping = cls(learned, now)
        firing = [a for a in alerts if a.pending_change in ("fired", "refired")]
        if not firing:
            return grouping
        for alert in firing:
            f = grouping.features[alert.pk] = features_of(alert)
            grouping._count(f)
        earliest = min(a.first_seen_at for a in firing)
        grouping._load_members(learned, earliest, {a.pk for a in alerts})
        for f in grouping.features.values():
            f.vector = grouping._vector(f)
        grouping.memory = Memory.load({f.sig for f in grouping.features.values()}, now)
        return grouping

    def _count(self, f: AlertFeatures) -> None:
        """Count the alert in the batch's IDF (`_counted` adds the counts up, once per kind of alert)."""
        kinds = self.uncounted
        kinds[f.kind] = kinds.get(f.kind, 0) + 1

    def _counted(self) -> None:
        for kind, n in self.uncounted.items():
            self.idf.add_many(kind.counted, n)
        self.uncounted.clear()

    def _load_members(self, rules: list[CorrelationRule], earliest: datetime.datetime, batch: set[int]) -> None:
        """Profiles of the incidents the batch's alerts may join: open ones (or resolved within the
        cool-down) of a learned rule, with an alert within the rule's window before the batch."""
        window = datetime.timedelta(minutes=max(r.window_minutes for r in rules))
        cooldown = datetime.timedelta(minutes=max(r.reopen_cooldown_minutes for r in rules))
        members = (
            Alert.objects.filter(
                incident__rule__in=rules, incident__merged_into__isnull=True, first_seen_at__gte=earliest - window
            )
            .filter(~Q(incident__status=Incident.Status.RESOLVED) | Q(incident__resolved_at__gte=self.now - cooldown))
            .exclude(pk__in=batch)
            .select_related("incident")
            .only("labels", "title", "service", "first_seen_at", "incident")
            .order_by("-first_seen_at")[:MAX_MEMBERS_LOADED]
        )
        loaded = []
        for alert in members:
            f = features_of(alert)
            self._count(f)
            loaded.append((alert.incident, f))
        self._counted()  # the IDF is complete before the first vector reads it
        for incident, f in reversed(loaded):  # oldest first, as the batch's own alerts come: postings stay ordered
            f.vector = self._vector(f)
            self._add(incident, f)

    def _vector(self, f: AlertFeatures) -> dict[str, float]:
        """The title's TF-IDF vector under this batch's IDF, once per distinct text."""
        found = self.vectors.get(f.text)
        if found is None:
            found = self.vectors[f.text] = tfidf(f.grams, self.idf)
        return found

    def _add(self, incident: Incident, f: AlertFeatures) -> None:
        key = incident.pk or id(incident)
        profile = self.profiles.get(key)
        if profile is None:
            profile = self.profiles[key] = Profile(incident, incident.rule_id)
        tokens = profile.tokens
        new_keys = [t for t in f.tokens if t not in tokens]
        word_keys = f.kind.word_keys
        new_keys += [k for k in word_keys if k not in tokens]
        new_keys += [] if f.sig in profile.sigs else ["s:" + f.sig]
        profile.add(f)
        tokens = profile.tokens  # a new profile's first add makes its dict
        for key in word_keys:
            tokens.setdefault(key, 0)
        index, at = self.index, f.at
        for key in new_keys:
            posting = index.get(key)
            if posting is None:
                posting = index[key] = Posting()
            posting.add(profile, at)

    def place(self, alert: Alert, rule: CorrelationRule) -> Decision:
        """Score the alert against its candidate incidents and decide.

        Each candidate's confidence is worked out here as plain numbers: `_evidence(...).confidence()`
        without the evidence and its words, the sum made in the order `Evidence.confidence` makes it (the
        same number to the last bit). The evidence and its words are made for the best candidate only."""
        f = self.features[alert.pk]
        window = rule.window_minutes * 60
        tau = window / TIME_DECAY_DIVISOR
        rule_pk, mine, at = rule.pk, f.sig, f.at
        earliest, latest = at - window, at + window
        best_confidence = -1.0
        best: tuple[float, Profile] | None = None
        context: _AlertContext | None = None
        w = WEIGHTS
        w_labels, w_title, w_time, w_history = w["labels"], w["title"], w["time"], w["history"]
        w_same, w_together, w_apart = w["same_alert"], w["together"], w["apart"]
        exp, log1p, bisect_left = math.exp, math.log1p, bisect.bisect_left
        cofire, fade = float(memory.COFIRE_SECONDS), CLOSENESS_FADE
        terms = self.memory.derived.get(mine)
        if terms is None:
            terms = self.memory.derived[mine] = {}
        for profile in self._candidates(f, window):
            # One failure's alerts start within the window of its first one: incidents do not snowball.
            times = profile.times
            first = times[0]
            if first < earliest or first > latest or profile.rule_id != rule_pk:
                continue
            gap = abs(at - nearest_time(times, at))
            if gap > window:
                continue
            if context is None:
                context = self._context(f)
                total_weight, weights, ordered = context.total_weight, context.weights, context.ordered_tokens
                grams, values = context.grams, context.values
            labels = title = 0.0
            if total_weight:
                tokens = profile.tokens
                labels = sum([weights[t] for t in ordered if t in tokens]) / total_weight
            if grams:
                found = map(profile.centroid.get, grams, itertools.repeat(0.0))
                title = sum(map(operator.mul, values, found)) / (profile.norm or profile.measure())
            history = same = together = apart = 0.0
            for sig, sig_times in profile.sigs.items():
                if sig == mine:
                    same = closeness(nearest_gap(sig_times, at))
                    continue
                known = terms.get(sig, _UNKNOWN)
                if known is _UNKNOWN:
                    known = terms[sig] = self._pair_terms(mine, sig)
                if known is None:
                    continue
                rate, usual, pair_together, pair_apart = known
                if rate is not None:
                    # closeness(abs(offset)) * in_order(offset, usual), with the nearest time bisected here
                    i = bisect_left(sig_times, at)
                    if i == len(sig_times):
                        nearest = sig_times[-1]
                    elif i == 0:
                        nearest = sig_times[0]
                    else:
                        before, after = sig_times[i - 1], sig_times[i]
                        nearest = before if at - before <= after - at else after
                    offset = at - nearest
                    distance = abs(offset)
                    near = 1.0 if distance <= cofire else exp(-(distance - cofire) / fade)
                    if not (abs(usual) <= ORDER_SLACK or offset * usual >= 0):
                        near *= exp(-abs(offset - usual) / fade)
                    if near > 0.01:
                        rate *= near
                        if rate > history:
                            history = rate
                if pair_together > together:
                    together = pair_together
                if pair_apart > apart:
                    apart = pair_apart
            z = (
                BIAS
                + w_labels * labels
                + w_title * title
                + w_time * exp(-gap / tau)
                + w_history * history
                + w_same * same
                + w_together * log1p(together)
                + w_apart * log1p(apart)
            )
            confidence = 1.0 / (1.0 + exp(-z))
            if confidence > best_confidence:
                best_confidence, best = confidence, (gap, profile)
        if best is None:
            return Decision(None, 0.0, "no open incident of this rule fired near it")
        gap, profile = best
        evidence = self._evidence(f, context, profile, gap, tau)
        confidence = evidence.confidence()
        if confidence >= JOIN_THRESHOLD:
            return Decision(profile.incident, confidence, evidence.reason())
        suggest = profile.incident if confidence >= SUGGEST_THRESHOLD else None
        reason = evidence.reason()
        return Decision(None, confidence, reason, suggest)

    def _pair_terms(self, mine: str, other: str) -> _PairTerms | None:
        """What memory knows about the pair (`mine`, `other`) as `place` uses it: the history rate
        (None when they hardly fired together), the usual offset of `mine` from `other`, and the merged
        and split counts; None when memory has no such pair. Kept with the memory (`Memory.derived`): the
        pairs and fired counts of the signatures it read do not change while it is kept."""
        pair = self.memory.pairs.get((mine, other) if mine < other else (other, mine))
        if pair is None:
            return None
        if pair.cofired < 0.5:
            return (None, 0.0, pair.together, pair.apart)
        usual = pair.lag_seconds / pair.cofired
        rate = history_rate(mine, other, pair, self.memory.fired)
        return (rate, -usual if mine < other else usual, pair.together, pair.apart)

    def _context(self, f: AlertFeatures) -> _AlertContext:
        """The same for every alert of a kind in a batch (the batch's IDF is fixed once read)."""
        found = self.contexts.get(f.kind)
        if found is None:
            weights = {t: self.idf.weight("l:" + t) for t in f.tokens}
            ordered = sorted(f.tokens, key=lambda t: -weights[t])
            vector = f.vector or {}
            found = _AlertContext(weights, sum(weights.values()), ordered, list(vector), list(vector.values()))
            self.contexts[f.kind] = found
        return found

    def _candidates(self, f: AlertFeatures, window: float) -> set[Profile]:
        """The incidents sharing a label pair or title word with the alert (unless shared by too many),
        its signature or a signature memory pairs with it (of each key, the last MAX_POSTING to get it),
        leaving out those that had it already `window` seconds before the alert."""
        partners = self.partner_keys.get(f.sig)
        if partners is None:
            partners = self.partner_keys[f.sig] = tuple("s:" + s for s in self.memory.partners.get(f.sig, ()))
        index = self.index
        earliest = f.at - window
        found: set[Profile] = set()
        for keys in (f.kind.keys, partners):
            for key in keys:
                posting = index.get(key)
                if posting is None:
                    continue
                profiles = posting.profiles
                if len(profiles) > MAX_POSTING:
                    if key[:2] != "s:":
                        continue
                    start = len(profiles) - MAX_POSTING
                else:
                    start = 0
                if posting.ordered:
                    # Profiles that got the key before `earliest` started before it too: none is a candidate.
                    start = max(start, bisect.bisect_left(posting.times, earliest))
                found.update(profiles[start:])
        return found

    def _evidence(self, f: AlertFeatures, context: _AlertContext, profile: Profile, gap: float, tau: float) -> Evidence:
        """The evidence that the alert belongs to the profile's incident."""
        evidence = Evidence(time=math.exp(-gap / tau), gap_seconds=gap)
        tokens = profile.tokens
        shared = [t for t in context.ordered_tokens if t in tokens]
        if context.total_weight:
            weights = context.weights
            evidence.labels = sum([weights[t] for t in shared]) / context.total_weight
            evidence.shared_labels = shared
        if context.grams:
            # The dot product of the title's TF-IDF vector with the incident's centroid, at C speed.
            found = map(profile.centroid.get, context.grams, itertools.repeat(0.0))
            evidence.title = sum(map(operator.mul, context.values, found)) / (profile.norm or profile.measure())
        fired = self.memory.fired
        pairs = self.memory.pairs
        mine, at = f.sig, f.at
        together = apart = 0.0
        for sig, times in profile.sigs.items():
            if sig == mine:
                # Another instance of the same alert (a replica) fires alongside; the same alert
                # again long after is another occurrence, which the rest of the evidence must carry.
                evidence.same_alert = closeness(nearest_gap(times, at))
                continue
            pair = pairs.get((mine, sig) if mine < sig else (sig, mine))
            if pair is None:
                continue
            if pair.cofired >= 0.5:
                offset = at - nearest_time(times, at)
                usual = pair.lag_seconds / pair.cofired
                near = closeness(abs(offset)) * in_order(offset, -usual if mine < sig else usual)
                if near > 0.01:
                    rate = history_rate(mine, sig, pair, fired) * near
                    if rate > evidence.history:
                        evidence.history, evidence.history_of = rate, (mine, sig, pair, fired)
            if pair.together > together:
                together = pair.together
                evidence.together = math.log1p(together)
            if pair.apart > apart:
                apart = pair.apart
                evidence.apart = math.log1p(apart)
        texts = []
        if together >= 0.5:
            texts.append(f"people merged these kinds of alerts {round(together)} time(s)")
        if apart >= 0.5:
            texts.append(f"people split them apart {round(apart)} time(s)")
        evidence.feedback_text = " but ".join(texts)
        return evidence

    def joined(self, alert: Alert, incident: Incident, decision: Decision) -> None:
        """Record where the alert went (a later alert of the batch may join the same incident)."""
        self._add(incident, self.features[alert.pk])
        if decision.suggest is not None and decision.suggest is not incident:
            key = (id(incident), id(decision.suggest))
            if key not in self.suggestions or self.suggestions[key][2] < decision.confidence:
                self.suggestions[key] = (incident, decision.suggest, decision.confidence, decision.reason)

    def finish(self) -> None:
        """After the batch's incidents are saved: store merge suggestions (on PostgreSQL one INSERT over
        arrays; a pair suggested before stays as it is). (Co-firings are counted after the batch is
        committed, by `memory.learn_cofirings`.)"""
        found = [(new, old, confidence, reason) for new, old, confidence, reason in self.suggestions.values()]
        found = [row for row in found if row[0].pk != row[1].pk]
        if not found:
            return
        if connection.vendor != "postgresql":
            MergeSuggestion.objects.bulk_create(
                [
                    MergeSuggestion(incident=new, other=old, confidence=confidence, reason=reason, created_at=self.now)
                    for new, old, confidence, reason in found
                ],
                ignore_conflicts=True,
            )
            return
        binary_execute(
            f"INSERT INTO {MergeSuggestion._meta.db_table} (incident_id, other_id, confidence, reason, state, "  # noqa: S608
            "created_at) SELECT v.incident, v.other, v.confidence, v.reason, %s, %s FROM "
            "unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::text[]) AS v(incident, other, confidence, reason) "
            "ON CONFLICT (incident_id, other_id) DO NOTHING",
            [
                str(MergeSuggestion.State.PENDING),
                self.now,
                [new.pk for new, _, _, _ in found],
                [old.pk for _, old, _, _ in found],
                [float(confidence) for _, _, confidence, _ in found],
                [reason for _, _, _, reason in found],
            ],
        )
