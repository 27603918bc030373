from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role
from opsportal.registry import portal_apps

DEMO_USERS = [
    ("oncall", "Olivia", "Oncall", Role.OPERATOR, "Ops engineer who triages incidents."),
    ("datasci", "Dana", "Scientist", Role.OPERATOR, "Data scientist who registers models."),
    ("reviewer", "Riley", "Reviewer", Role.VIEWER, "Product reviewer of LLM quality."),
    ("mllead", "Morgan", "Lead", Role.ADMIN, "ML lead who approves model promotions."),
    ("promptdev", "Priya", "Product", Role.OPERATOR, "Product engineer who writes and evaluates prompts."),
]


class Command(BaseCommand):
    help = "Load demo data. Safe to run again: what exists already is left as it is."

    def handle(self, *args, **options) -> None:
        created = 0
        for username, first, last, role, _about in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            # Demo accounts have no password: an admin sets one on the Users page to try a role.
            accounts.create_user(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{username}@example.com",
                role=role,
                actor=None,
            )
            created += 1
        users = User.objects.in_bulk([username for username, *_ in DEMO_USERS], field_name="username")
        # Each installed product app seeds its own data (opsportal.registry): the core knows none of them.
        reports = [app.seed_demo(users=users) for app in portal_apps()]
        self.stdout.write(f"Demo data ready ({'; '.join([f'{created} demo users created', *reports])}).")
