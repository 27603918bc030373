import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from opsportal.accounts import services
from opsportal.accounts.roles import Role


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "admin-credentials.txt"


def pending_announcement_path() -> Path:
    """Left by `--announce-later`: `run_portal` prints the new credentials once the portal is ready."""
    return Path(settings.VAR_DIR) / "admin-credentials.announce"


class Command(BaseCommand):
    help = (
        "Make sure an admin user exists. The first time, create 'admin' with a random password, "
        "print it and keep it in var/admin-credentials.txt (readable only by you)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--announce-later",
            action="store_true",
            help="do not print a new password now: `manage.py run_portal` shows it once the portal is ready",
        )

    def handle(self, *args, announce_later: bool = False, **options) -> None:
        credentials = credentials_path()
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            if credentials.exists() and not announce_later:
                self.stdout.write(f"Admin credentials are in {credentials}.")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(username="admin").first()
        if user is None:
            user = services.create_user(username="admin", role=Role.ADMIN, password=password, actor=None)
        else:
            services.set_password(user=user, password=password, actor=None)
        user.is_staff = user.is_superuser = True
        user.is_active = True
        user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text(f"username: admin\npassword: {password}\n")
        credentials.chmod(0o600)
        if announce_later:
            pending_announcement_path().touch(mode=0o600)
            self.stdout.write("Admin user created; its name and password are shown when the portal is ready.")
            return
        bar = "=" * 60
        self.stdout.write(
            f"{bar}\nAdmin user created.\n  username: admin\n  password: {password}\n(kept in {credentials})\n{bar}"
        )
