"""Review pages: annotation queues (made from score configs and a trace filter), the keyboard-driven review of
one item at a time, adding a trace by hand (from the trace page) and exporting reviewed or low-scoring cases
into an evaluation dataset. Every change goes through `llmops.services.review` / `scores`."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from opsportal.accounts.roles import Role, has_role, role_required
from opsportal.errors import ServiceError

from ..models import AnnotationItem, AnnotationQueue, DataType, Score, ScoreConfig
from ..models.scores import numeric
from ..online.cases import last_text
from ..online.cases import messages as chat_messages
from ..services import review as review_services
from ..services import scores as score_services
from ..services.base import InvalidInput


def _filter_from(post) -> dict:
    return {
        key: post.get(key, "").strip() for key in ("service", "model", "status", "prompt") if post.get(key, "").strip()
    }


@role_required(Role.VIEWER)
def review_list(request: HttpRequest) -> HttpResponse:
    """The queues with their counts; operators make queues and score configs here."""
    status = 200
    if request.method == "POST":
        if not has_role(request.user, Role.OPERATOR):
            return HttpResponse("Making queues needs the operator role.", status=403)
        try:
            if request.POST.get("form") == "config":
                score_services.create_score_config(
                    name=request.POST.get("name"), actor=request.user, data_type=request.POST.get("data_type"),
                    min_value=request.POST.get("min_value"), max_value=request.POST.get("max_value"),
                    categories=request.POST.get("categories", ""), description=request.POST.get("description", ""),
                )  # fmt: skip
                messages.success(request, "Score config saved.")
                return redirect("llmops:review")
            configs = list(ScoreConfig.objects.filter(pk__in=request.POST.getlist("score_configs")))
            queue = review_services.create_queue(name=request.POST.get("name"), actor=request.user,
                                                 score_configs=configs, description=request.POST.get("description", ""),
                                                 filter=_filter_from(request.POST))  # fmt: skip
            messages.success(request, f"Queue {queue.name} created with {queue.items.count()} traces.")
            return redirect(queue.get_absolute_url())
        except ServiceError as exc:
            messages.error(request, str(exc))
            status = 400
    queues = list(AnnotationQueue.objects.prefetch_related("score_configs"))
    for queue in queues:
        queue.counts = review_services.queue_counts(queue)
    context = {"queues": queues, "configs": ScoreConfig.objects.all(), "data_types": DataType.choices,
               "is_operator": has_role(request.user, Role.OPERATOR),
               "score_names": score_services.score_names()}  # fmt: skip
    return render(request, "llmops/review_list.html", context, status=status)


@role_required(Role.VIEWER)
def review_queue(request: HttpRequest, pk: int) -> HttpResponse:
    """One queue: its counts, the items reviewed with their scores, export into a dataset."""
    queue = get_object_or_404(AnnotationQueue.objects.prefetch_related("score_configs"), pk=pk)
    items = list(queue.items.select_related("reviewed_by", "claimed_by").order_by("-id")[:100])
    scores: dict[str, list[Score]] = {}
    for score in Score.objects.filter(queue=queue).select_related("author"):
        scores.setdefault(score.trace_id, []).append(score)
    for item in items:
        item.scores = scores.get(item.trace_id, [])
    context = {"queue": queue, "items": items, "counts": review_services.queue_counts(queue),
               "is_operator": has_role(request.user, Role.OPERATOR)}  # fmt: skip
    return render(request, "llmops/review_queue.html", context)


@role_required(Role.VIEWER)
def review_next(request: HttpRequest, pk: int) -> HttpResponse:
    """The reviewer's next item, claimed for them: the trace's question and answer and a score field per config.

    Keys: digits pick a value of the focused score (booleans: 1 yes, 0 no), Tab moves between scores,
    Enter saves and goes on, s skips, n goes to the next item without saving (the claim stays).
    """
    queue = get_object_or_404(AnnotationQueue.objects.prefetch_related("score_configs"), pk=pk)
    item = review_services.claim_next(queue=queue, actor=request.user)
    if item is None:
        messages.info(request, "Nothing left to review in this queue.")
        return redirect(queue.get_absolute_url())
    generation = review_services.generation_of(item.trace_id, item.span_id)
    context = {
        "queue": queue, "item": item, "generation": generation, "configs": list(queue.score_configs.all()),
        "chat": chat_messages(generation.input) if generation else [],
        "answer": last_text(generation.output, ("assistant", "model", "ai")) if generation else "",
        "counts": review_services.queue_counts(queue),
    }  # fmt: skip
    return render(request, "llmops/review_item.html", context)


@require_POST
@role_required(Role.VIEWER)
def review_item(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    """Save the scores and comment of an item (action=save) or skip it (action=skip); then the next item."""
    queue = get_object_or_404(AnnotationQueue, pk=pk)
    row = get_object_or_404(AnnotationItem, pk=item, queue=queue)
    try:
        if request.POST.get("action") == "skip":
            review_services.skip_item(item=row, actor=request.user)
        else:
            values = {c.name: request.POST.get(f"score-{c.name}", "").strip() for c in queue.score_configs.all()}
            review_services.submit_review(item=row, actor=request.user, values=values,
                                          comment=request.POST.get("comment", ""))  # fmt: skip
    except ServiceError as exc:
        messages.error(request, str(exc))
    return redirect("llmops:review-next", pk=queue.pk)


@require_POST
@role_required(Role.VIEWER)
def review_add(request: HttpRequest) -> HttpResponse:
    """Add a trace to a queue by hand (the trace page's "Add to queue" form: `queue`, `trace_id`, `next`)."""
    queue = get_object_or_404(AnnotationQueue, pk=request.POST.get("queue") or 0)
    try:
        added = review_services.add_traces(queue=queue, trace_ids=[request.POST.get("trace_id", "")],
                                           actor=request.user)  # fmt: skip
        messages.success(request, f"Added to {queue.name}." if added else f"Already in {queue.name}.")
    except ServiceError as exc:
        messages.error(request, str(exc))
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else queue.get_absolute_url())


@require_POST
@role_required(Role.OPERATOR)
def review_export(request: HttpRequest) -> HttpResponse:
    """One click: a queue's reviewed cases (`queue`) or the cases scored under a threshold (`score`, `below`)
    into the dataset named `dataset` (made when missing)."""
    try:
        if request.POST.get("queue"):
            queue = get_object_or_404(AnnotationQueue, pk=request.POST["queue"])
            cases = review_services.reviewed_traces(queue=queue)
        else:
            below = numeric(request.POST.get("below"))
            if below is None:
                raise InvalidInput("a number", field="below")
            cases = review_services.low_scoring_traces(name=request.POST.get("score", ""), below=below)
        dataset, added = review_services.export_to_dataset(cases=cases, dataset_name=request.POST.get("dataset", ""),
                                                           actor=request.user)  # fmt: skip
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect(request.POST.get("next") or "llmops:review")
    messages.success(request, f"{added} case{'s' if added != 1 else ''} added to {dataset.name}.")
    return redirect(dataset.get_absolute_url())
