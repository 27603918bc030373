"""Changes made in Django's admin bypass our services; its LogEntry is mirrored here."""

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import services

ACTIONS = {ADDITION: services.Action.CREATE, CHANGE: services.Action.UPDATE, DELETION: services.Action.DELETE}


@receiver(post_save, sender=LogEntry)
def _mirror_admin_change(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if not created:
        return
    content_type = instance.content_type
    services.record(
        action=ACTIONS.get(instance.action_flag, services.Action.UPDATE),
        actor=instance.user,
        app_label=content_type.app_label if content_type else "admin",
        model=content_type.model if content_type else "",
        object_id=instance.object_id or "",
        object_repr=instance.object_repr,
        message=f"Django admin: {instance.get_change_message() or instance.get_action_flag_display()}",
    )
