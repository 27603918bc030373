"""Demo data for `manage.py seed_demo`: prompts with versions and labels, datasets, and finished runs.

The runs score imported outputs (recorded answers of each prompt version), so the demo needs no
LLM provider and no network; the second version's run has regressions to compare. Everything goes
through the real services and the real engine.
"""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.db import transaction

from . import engine, services
from .models import Prompt

FAQ = [
    ("How do I reset my password?", "Open Settings > Security, choose Reset password and follow the e-mail link."),
    ("Can I change my billing date?", "Yes: Billing > Payment schedule lets you move the date once per cycle."),
    ("How do I export my data?", "Go to Settings > Privacy and choose Export; we e-mail a ZIP within an hour."),
    ("Do you offer refunds?", "Annual plans can be refunded within 30 days from Billing > Refund."),
    ("How do I add a team member?", "Admins invite people from Team > Invite with their e-mail address."),
    ("Is there a mobile app?", "Yes, for iOS and Android; sign in with the same account."),
    ("How do I delete my account?", "Settings > Account > Delete account removes it after a 7-day grace period."),
    ("Where can I see my invoices?", "Billing > Invoices lists them; each can be downloaded as PDF."),
]
# What v2 (the "concise" prompt) answered: three answers got worse, one refused.
V2_CHANGES = {
    2: "Sorry, I can't help with exporting data.",
    4: "Ask an admin.",
    6: "You can't.",
}
SCORERS = [
    {"type": "not-refusal"},
    {"type": "word-count", "config": {"min": 5, "max": 60}},
    {"type": "rouge-l", "threshold": 0.4},
    {"type": "pii"},
]


def _jsonl(outputs: list[str]) -> bytes:
    rows = [
        {"input": {"question": q}, "expected_output": a, "output": out}
        for (q, a), out in zip(FAQ, outputs, strict=True)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


@transaction.atomic
def seed(*, author: User, admin: User) -> bool:
    """Create the demo LLMOps data once; returns False when it is already there."""
    if Prompt.objects.filter(name="support-answer").exists():
        return False
    provider = services.create_provider(
        name="OpenAI (demo, no key)", base_url="https://api.openai.com/v1", actor=admin, max_concurrency=8
    )
    services.add_model(provider=provider, name="gpt-4o-mini", actor=admin)
    services.add_model(provider=provider, name="gpt-4.1", actor=admin)

    faq = services.create_dataset(name="support-faq", actor=author, description="Frequent support questions.")
    for question, answer in FAQ:
        services.add_item(dataset=faq, actor=author, input={"question": question}, expected_output=answer,
                          tags=["billing"] if "bill" in question.lower() or "invoice" in question else [])  # fmt: skip
    capitals = services.create_dataset(name="capital-cities", actor=author, description="Geography smoke test.")
    for country, city in [("France", "Paris"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"),
                          ("Peru", "Lima"), ("Canada", "Ottawa")]:  # fmt: skip
        services.add_item(dataset=capitals, actor=author, input={"country": country}, expected_output=city)

    prompt = services.create_prompt(
        name="support-answer",
        actor=author,
        description="Answers customer support questions from the help centre.",
        messages=[
            {"role": "system", "content": "You are a friendly support agent. Answer with the exact menu path."},
            {"role": "user", "content": "{{ question }}"},
        ],
        model="gpt-4o-mini",
        parameters={"temperature": 0.2, "max_tokens": 200},
        commit_message="First version",
    )
    v1 = prompt.versions.get(version=1)
    v2 = services.create_version(
        prompt=prompt,
        actor=author,
        messages=[
            {"role": "system", "content": "You are a support agent. Be concise: one short sentence."},
            {"role": "user", "content": "{{ question }}"},
        ],
        model="gpt-4o-mini",
        parameters={"temperature": 0.2, "max_tokens": 60},
        commit_message="Shorter answers to cut cost",
    )
    services.update_prompt(prompt=prompt, actor=admin, gate_dataset=faq, gate_min_pass_rate=0.8)
    services.create_prompt(
        name="capital-quiz",
        actor=author,
        messages=[{"role": "user", "content": "What is the capital of {{ country }}? Answer with the city only."}],
        model="gpt-4o-mini",
        parameters={"temperature": 0},
    )

    baseline, _ = services.create_score_run(
        data=_jsonl([answer for _q, answer in FAQ]), filename="support-v1.jsonl", scorers=SCORERS, actor=author,
        name="support-answer v1: recorded answers", dataset=faq, prompt_version=v1,
    )  # fmt: skip
    candidate, _ = services.create_score_run(
        data=_jsonl([V2_CHANGES.get(i, answer) for i, (_q, answer) in enumerate(FAQ)]),
        filename="support-v2.jsonl", scorers=SCORERS, actor=author, name="support-answer v2: recorded answers",
        dataset=faq, prompt_version=v2,
    )  # fmt: skip
    for run in (baseline, candidate):
        engine.execute(run.pk)
    services.move_label(prompt=prompt, label="production", version=v1, actor=author)
    services.move_label(prompt=prompt, label="staging", version=v2, actor=author)
    quiz = Prompt.objects.get(name="capital-quiz")
    services.move_label(prompt=quiz, label="production", version=quiz.versions.get(), actor=author)
    return True
