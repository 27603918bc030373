from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from opsportal.accounts import services


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (last line of output). It is shown only once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="created with manage.py", help="What the token is for.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is deactivated; a token would not work.")
        token, raw = services.create_api_token(user=user, name=name, actor=None)
        self.stderr.write(f"Created token {token.prefix}… for {username}. Store it now: it is not shown again.")
        self.stdout.write(raw)
