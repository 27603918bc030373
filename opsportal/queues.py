"""The Celery queues every deployment has (see docs/architecture.md, "Task flow")."""

QUEUES = ("default", "collection", "checks", "evals")
