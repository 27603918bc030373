from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

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
        from aiops import demo as aiops_demo

        oncall = User.objects.get(username="oncall")
        aiops_seeded = aiops_demo.seed(actor=oncall)
        from mlops import demo as mlops_demo

        mlops_seeded = mlops_demo.seed(
            scientist=User.objects.get(username="datasci"), admin=User.objects.get(username="mllead")
        )

        from llmops import demo as llmops_demo

        llmops_seeded = llmops_demo.seed(
            author=User.objects.get(username="promptdev"), admin=User.objects.get(username="mllead")
        )

        def state(seeded: bool) -> str:
            return "created" if seeded else "already there"

        self.stdout.write(
            f"Demo data ready ({created} demo users created; AIOps demo data {state(aiops_seeded)}; "
            f"MLOps demo registry {state(mlops_seeded)}; LLMOps demo data {state(llmops_seeded)})."
        )
