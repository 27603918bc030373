from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone


@shared_task(acks_late=True, reject_on_worker_lost=True)
def clear_expired_sessions() -> int:
    """Delete expired sessions (what `manage.py clearsessions` does), returning how many."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
