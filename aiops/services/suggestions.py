"""Merge suggestions of learned correlation: people accept (the incidents merge) or reject them.

Both decisions are kept on the suggestion and teach the learner: an accepted suggestion merges
through `merge_incidents`, whose timeline entry the learner reads as "these belong together";
a rejected one is taught as "these do not", and the same pair is never suggested again.
"""

from __future__ import annotations

import itertools

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import InvalidInput

from ..correlation_learning import memory
from ..models import Alert, Incident, IncidentEvent, MergeSuggestion
from .actor import Actor, user_of
from .incidents import add_event, merge_incidents


def pending_suggestions(*, incident: Incident) -> list[MergeSuggestion]:
    """Pending suggestions that involve the incident (either side), likeliest first; pairs where one
    side has been merged away since are left out."""
    return list(
        MergeSuggestion.objects.filter(Q(incident=incident) | Q(other=incident), state=MergeSuggestion.State.PENDING)
        .filter(incident__merged_into__isnull=True, other__merged_into__isnull=True)
        .select_related("incident", "other")
        .order_by("-confidence", "-id")
    )


def _pending(suggestion: MergeSuggestion) -> MergeSuggestion:
    locked = MergeSuggestion.objects.select_for_update().select_related("incident", "other").get(pk=suggestion.pk)
    if locked.state != MergeSuggestion.State.PENDING:
        raise InvalidInput(f"this suggestion was already {locked.state}.", field="suggestion")
    return locked


def _decide(suggestion: MergeSuggestion, state: str, actor: Actor) -> None:
    suggestion.state, suggestion.decided_by, suggestion.decided_at = state, user_of(actor), timezone.now()
    suggestion.save(update_fields=["state", "decided_by", "decided_at"])
    audit.record(action=audit.Action.STATE, actor=actor, obj=suggestion, changes={"state": ["pending", state]})


@transaction.atomic
def accept_merge_suggestion(*, suggestion: MergeSuggestion, actor: Actor) -> Incident:
    """Merge the suggested incident into the other (the older one); returns the incident that remains."""
    suggestion = _pending(suggestion)
    for incident in (suggestion.incident, suggestion.other):
        if incident.merged_into_id:
            raise InvalidInput(f"incident #{incident.pk} was merged into #{incident.merged_into_id} meanwhile.")
    _decide(suggestion, MergeSuggestion.State.ACCEPTED, actor)
    return merge_incidents(source=suggestion.incident, target=suggestion.other, actor=actor)


@transaction.atomic
def reject_merge_suggestion(*, suggestion: MergeSuggestion, actor: Actor) -> MergeSuggestion:
    """Keep the incidents apart, and teach the learner that their kinds of alerts do not belong together."""
    suggestion = _pending(suggestion)
    _decide(suggestion, MergeSuggestion.State.REJECTED, actor)
    mine = _signatures(suggestion.incident)
    theirs = _signatures(suggestion.other)
    memory.teach(apart=list(itertools.islice(((a, b) for a in mine for b in theirs if a != b), 200)))
    message = f"Merge with #{suggestion.other_id} suggested ({suggestion.confidence:.0%}) and rejected."
    add_event(incident=suggestion.incident, kind=IncidentEvent.Kind.COMMENT, message=message, actor=actor)
    return suggestion


def _signatures(incident: Incident) -> set[str]:
    alerts = Alert.objects.filter(incident=incident).only("labels", "title", "service")[:200]
    return {memory.alert_signature(alert) for alert in alerts}
