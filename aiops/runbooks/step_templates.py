"""Ready-made http steps for common targets' REST APIs. Each is a step to insert and adapt: the placeholders
in CAPITALS (a host, a namespace, a job id) are the parts to fill in, and the secret it reads
(`{{ secrets.NAME }}`) is set on the runbook, stored encrypted and never shown again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepTemplate:
    key: str
    title: str
    description: str
    secrets: tuple[str, ...]
    step: dict


TEMPLATES = [
    StepTemplate(
        key="kubernetes_rollout_restart",
        title="Kubernetes: rollout restart a deployment",
        description="What `kubectl rollout restart` does: a strategic-merge patch of the pod template's "
        "restartedAt annotation (the API server answers 200). The service account needs `patch` on deployments.",
        secrets=("K8S_TOKEN",),
        step={
            "kind": "http",
            "name": "rollout_restart",
            "method": "PATCH",
            "url": "https://KUBERNETES_API:6443/apis/apps/v1/namespaces/{{ labels.namespace | default('default') }}"
            "/deployments/{{ labels.deployment | default(incident.service) }}",
            "headers": {
                "Authorization": "Bearer {{ secrets.K8S_TOKEN }}",
                "Content-Type": "application/strategic-merge-patch+json",
            },
            "body": {
                "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "{{ now }}"}}}}
            },
            "expect_status": [200],
            "extract": {"generation": "$.metadata.generation"},
        },
    ),
    StepTemplate(
        key="awx_job_template_launch",
        title="Ansible AWX / Automation Controller: launch a job template",
        description="POST to the job template's launch endpoint (201 Created); the job id is extracted as "
        "steps.launch_job.job for later steps (e.g. GET /api/v2/jobs/{{ steps.launch_job.job }}/).",
        secrets=("AWX_TOKEN",),
        step={
            "kind": "http",
            "name": "launch_job",
            "method": "POST",
            "url": "https://AWX_HOST/api/v2/job_templates/JOB_TEMPLATE_ID/launch/",
            "headers": {"Authorization": "Bearer {{ secrets.AWX_TOKEN }}"},
            "body": {"extra_vars": {"service": "{{ incident.service }}", "incident": "{{ incident.id }}"}},
            "expect_status": [201],
            "extract": {"job": "$.job"},
        },
    ),
    StepTemplate(
        key="rundeck_job_run",
        title="Rundeck: run a job",
        description="POST /api/41/job/<id>/run with an API token (200); the execution id is extracted as "
        "steps.run_job.execution.",
        secrets=("RUNDECK_TOKEN",),
        step={
            "kind": "http",
            "name": "run_job",
            "method": "POST",
            "url": "https://RUNDECK_HOST/api/41/job/JOB_UUID/run",
            "headers": {"X-Rundeck-Auth-Token": "{{ secrets.RUNDECK_TOKEN }}", "Accept": "application/json"},
            "body": {"options": {"service": "{{ incident.service }}", "incident": "{{ incident.id }}"}},
            "expect_status": [200],
            "extract": {"execution": "$.id"},
        },
    ),
    StepTemplate(
        key="github_workflow_dispatch",
        title="GitHub Actions: workflow_dispatch",
        description="Starts a workflow that declares `on: workflow_dispatch` (204 No Content). The token needs "
        "the Actions write permission on the repository.",
        secrets=("GITHUB_TOKEN",),
        step={
            "kind": "http",
            "name": "dispatch_workflow",
            "method": "POST",
            "url": "https://api.github.com/repos/OWNER/REPO/actions/workflows/WORKFLOW_FILE.yml/dispatches",
            "headers": {
                "Authorization": "Bearer {{ secrets.GITHUB_TOKEN }}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            "body": {"ref": "main", "inputs": {"service": "{{ incident.service }}", "incident": "{{ incident.id }}"}},
            "expect_status": [204],
        },
    ),
    StepTemplate(
        key="jenkins_build",
        title="Jenkins: build a job with parameters",
        description="POST /job/<name>/buildWithParameters with a user's API token in basic auth (201 Created, "
        "the queue item in the Location header).",
        secrets=("JENKINS_USER", "JENKINS_TOKEN"),
        step={
            "kind": "http",
            "name": "jenkins_build",
            "method": "POST",
            "url": "https://JENKINS_HOST/job/JOB_NAME/buildWithParameters?SERVICE={{ incident.service | urlencode }}"
            "&INCIDENT={{ incident.id }}",
            "headers": {
                "Authorization": "Basic {{ (secrets.JENKINS_USER ~ ':' ~ secrets.JENKINS_TOKEN) | b64encode }}"
            },
            "expect_status": [201],
        },
    ),
]

BY_KEY = {template.key: template for template in TEMPLATES}
