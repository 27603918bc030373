"""Pattern mining with drain3: one miner per service, kept in memory, its state persisted in `LogMinerState`.

Speed: a record's body is first *masked* (every whitespace-separated token holding a digit becomes
`<*>`, as drain3 itself treats such tokens; only the first line, at most `MINED_CHARS` characters).
Records with the same masked shape always land in the same drain3 cluster, so the shape is looked up
in a per-service cache first and only unseen shapes go through drain3. A steady stream of logs is
then a dictionary lookup per record.

Several web processes mine the same services: the state row is locked (`SELECT … FOR UPDATE`) while
a process adds unseen shapes, and a process whose copy is older than the row's `version` reloads it
first, so every process assigns the same cluster (and template) ids. A cluster's id never changes in
drain3 (its template only generalises), so the cached shapes of an older copy stay right.
"""

from __future__ import annotations

import re
import threading
import zlib
from dataclasses import dataclass, field

import jsonpickle
from django.utils import timezone
from drain3.drain import Drain

from ..models import LogMinerState, LogTemplate

MINED_CHARS = 300
SHAPE_CACHE_LIMIT = 50_000
# A whitespace-separated token with a digit; the lookbehind starts matches at token starts only (no
# quadratic retries inside long tokens).
DIGIT_TOKEN = re.compile(r"(?<!\S)[^\s\d]*\d\S*")
# drain3's defaults, except a slightly lower similarity (log lines of one pattern differ in a few words).
DRAIN_SETTINGS = {"depth": 4, "sim_th": 0.4, "max_children": 100, "max_clusters": None}


def mask(body: str) -> str:
    """The shape drain3 mines: the first line, tokens with digits replaced by `<*>`."""
    line = body[:MINED_CHARS]
    cut = line.find("\n")
    if cut >= 0:
        line = line[:cut]
    return DIGIT_TOKEN.sub("<*>", line).strip() or "<empty>"


@dataclass
class TemplateInfo:
    """What a process remembers of one template: its row id, text and highest severity seen."""

    id: int
    template: str
    severity: str
    error_alerted: bool


@dataclass
class ServiceMiner:
    """One service's drain3 instance, its shape cache and its templates, as of state `version`."""

    service: str
    drain: Drain
    version: int = 0
    shapes: dict[str, int] = field(default_factory=dict)  # masked shape -> cluster id
    templates: dict[int, TemplateInfo] = field(default_factory=dict)  # cluster id -> template


@dataclass
class Mined:
    """The result of mining one batch of one service."""

    template_ids: list[int]
    templates: dict[int, TemplateInfo]  # template id -> info, for the templates in the batch
    created: set[int] = field(default_factory=set)  # template ids created by this batch


_miners: dict[str, ServiceMiner] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop every in-memory miner (the next batch reloads them from the database): a process restart."""
    with _lock:
        _miners.clear()


def new_drain() -> Drain:
    return Drain(**DRAIN_SETTINGS)


def dump_state(drain: Drain) -> bytes:
    return zlib.compress(jsonpickle.dumps(drain, keys=True).encode())


def load_state(state: bytes) -> Drain:
    return jsonpickle.loads(zlib.decompress(bytes(state)).decode(), keys=True)


def _load_templates(miner: ServiceMiner) -> None:
    miner.templates = {
        row.cluster_id: TemplateInfo(row.id, row.template, row.severity, row.error_alerted_at is not None)
        for row in LogTemplate.objects.filter(service=miner.service).only(
            "id", "cluster_id", "template", "severity", "error_alerted_at"
        )
    }


def _miner(service: str, stored_version: int | None) -> ServiceMiner:
    """This process's miner for `service`, reset when its state row is gone (deleted, or a fresh database)."""
    miner = _miners.get(service)
    if miner is not None and stored_version is None and miner.version:
        miner = None
    if miner is None:
        miner = ServiceMiner(service=service, drain=new_drain())
        if stored_version is not None:
            _reload(miner)
        _miners[service] = miner
    return miner


def _reload(miner: ServiceMiner) -> None:
    row = LogMinerState.objects.filter(service=miner.service).first()
    if row is None:
        miner.drain, miner.version, miner.shapes = new_drain(), 0, {}
    else:
        miner.drain, miner.version = load_state(row.state), row.version
        # Shapes cached from an older copy stay valid (cluster ids are stable); templates are re-read.
    _load_templates(miner)


def stored_versions(services: list[str]) -> dict[str, int]:
    return dict(LogMinerState.objects.filter(service__in=services).values_list("service", "version"))


def mine(service: str, bodies: list[str], stored_version: int | None) -> Mined:
    """A template id for each body (in order); unseen shapes go through drain3 and the state is saved.

    Must run inside a transaction (the state row lock is held until it commits).
    """
    with _lock:
        miner = _miner(service, stored_version)
        shapes = [mask(body) for body in bodies]
        unseen = {shape for shape in shapes if shape not in miner.shapes}
        changed: dict[int, str] = {}
        created: set[int] = set()
        if unseen:
            _lock_state(miner)
            for shape in sorted(unseen):
                if shape in miner.shapes:
                    continue
                cluster, change = miner.drain.add_log_message(shape)
                miner.shapes[shape] = cluster.cluster_id
                if change != "none" or cluster.cluster_id not in miner.templates:
                    changed[cluster.cluster_id] = cluster.get_template()
            if len(miner.shapes) > SHAPE_CACHE_LIMIT:
                keep = {shape: miner.shapes[shape] for shape in shapes}
                miner.shapes = keep
            created = _save_templates(miner, changed)
            _save_state(miner)
        cluster_ids = [miner.shapes[shape] for shape in shapes]
        infos = {miner.templates[c].id: miner.templates[c] for c in set(cluster_ids)}
        return Mined(
            template_ids=[miner.templates[c].id for c in cluster_ids],
            templates=infos,
            created=created,
        )


def _lock_state(miner: ServiceMiner) -> None:
    """Lock this service's state row (creating it), reloading the state if another process saved a newer one."""
    row = LogMinerState.objects.select_for_update().filter(service=miner.service).first()
    if row is None:
        LogMinerState.objects.bulk_create(
            [LogMinerState(service=miner.service, state=dump_state(new_drain()), version=0)], ignore_conflicts=True
        )
        row = LogMinerState.objects.select_for_update().get(service=miner.service)
    if row.version != miner.version:
        miner.drain, miner.version = load_state(row.state), row.version
        _load_templates(miner)


def _save_state(miner: ServiceMiner) -> None:
    miner.version += 1
    LogMinerState.objects.filter(service=miner.service).update(
        state=dump_state(miner.drain),
        version=miner.version,
        clusters=len(miner.drain.id_to_cluster),
        updated_at=timezone.now(),
    )


def _save_templates(miner: ServiceMiner, changed: dict[int, str]) -> set[int]:
    """Create or re-word the templates of new or generalised clusters; the ids of those created."""
    created: set[int] = set()
    now = timezone.now()
    for cluster_id, text in sorted(changed.items()):
        info = miner.templates.get(cluster_id)
        if info is None:
            row, made = LogTemplate.objects.get_or_create(
                service=miner.service,
                cluster_id=cluster_id,
                defaults={"template": text, "count": 0, "first_seen": now, "last_seen": now, "created_at": now},
            )
            if made:
                created.add(row.id)
            elif row.template != text:
                LogTemplate.objects.filter(pk=row.pk).update(template=text)
            miner.templates[cluster_id] = TemplateInfo(row.id, text, row.severity, row.error_alerted_at is not None)
        elif info.template != text:
            LogTemplate.objects.filter(pk=info.id).update(template=text)
            info.template = text
    return created
