"""Credentials in a text: API keys of common providers by their documented formats, private keys, JWTs,
connection strings with a password, and high-entropy tokens assigned to a secret-looking name.

Each finding carries its span, so the policy can mask it. A random-looking string alone is not reported
(hashes, UUIDs and base64 data are everywhere in logs and code); it is when it is the value of a name such as
`api_key`, `secret`, `token`, `password` or an `Authorization` header, or when its entropy is that of a
generated key (at least 4.2 bits per character over 32 or more characters of mixed case and digits).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class SecretFormat:
    kind: str
    pattern: re.Pattern
    description: str


def _p(pattern: str, flags: int = 0) -> re.Pattern:
    return re.compile(pattern, flags)


FORMATS: tuple[SecretFormat, ...] = (
    SecretFormat("private-key", _p(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END "
                                   r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]{0,4000})"),
                 "PEM private key (RSA, EC, DSA, OpenSSH, PGP, PKCS#8, encrypted)"),
    SecretFormat("aws-access-key", _p(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z2-7]{16}\b"),
                 "AWS access key id"),
    SecretFormat("aws-secret-key", _p(r"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
                                      r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
                 "AWS secret access key (named as one)"),
    SecretFormat("github-token", _p(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"),
                 "GitHub token (classic, fine-grained, OAuth, app)"),
    SecretFormat("gitlab-token", _p(r"\bgl(?:pat|dt|rt|ptt|cbt|oas|soat|ffct)-[A-Za-z0-9_\-]{20,}\b"),
                 "GitLab token"),
    SecretFormat("slack-token", _p(r"\bxox[abposre]-(?:[A-Za-z0-9]+-){1,4}[A-Za-z0-9]{10,}\b"), "Slack token"),
    SecretFormat("slack-webhook", _p(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,}"),
                 "Slack incoming webhook URL"),
    SecretFormat("stripe-key", _p(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,99}\b"),
                 "Stripe secret or restricted key"),
    SecretFormat("openai-key", _p(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}"
                                  r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}|\bsk-[A-Za-z0-9]{48}\b"),
                 "OpenAI API key"),
    SecretFormat("anthropic-key", _p(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}"), "Anthropic API key"),
    SecretFormat("google-api-key", _p(r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"), "Google API key"),
    SecretFormat("google-oauth-token", _p(r"\bya29\.[0-9A-Za-z_\-]{30,}"), "Google OAuth access token"),
    SecretFormat("twilio-key", _p(r"\bSK[0-9a-f]{32}\b"), "Twilio API key"),
    SecretFormat("sendgrid-key", _p(r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b"), "SendGrid API key"),
    SecretFormat("npm-token", _p(r"\bnpm_[A-Za-z0-9]{36}\b"), "npm access token"),
    SecretFormat("pypi-token", _p(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"), "PyPI upload token"),
    SecretFormat("huggingface-token", _p(r"\bhf_[A-Za-z]{34}\b"), "Hugging Face token"),
    SecretFormat("azure-storage-key", _p(r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)"), "Azure storage account key"),
    SecretFormat("jwt", _p(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}"),
                 "JSON Web Token (header with an algorithm)"),
    SecretFormat("connection-string", _p(r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?"
                                         r"|mssql|sqlserver|ftp|sftp)://[^\s:/@]+:([^\s@/]{3,})@[^\s/]+"),
                 "URL with a user and password (databases, brokers, FTP)"),
)  # fmt: skip

_NAMED_VALUE = re.compile(
    r"(?i)\bAuthorization:\s*(?:Bearer|Token|Basic)\s+([A-Za-z0-9._~+/\-]{12,}=*)"
    r"|\b([a-z0-9_.\-]*(?:api[_\-.]?key|apikey|secret|token|passwd|password|pwd|private[_\-.]?key|access[_\-.]?"
    r"key|auth|credential|client[_\-.]?secret|bearer)[a-z0-9_\-.]*)[\"']?\s*(?:[:=]|=>|:=|\s+is\s+)\s*[\"'`]?"
    r"([^\s\"'`,;]{6,200})"
)
_PASSWORD_NAME = re.compile(r"(?i)pass(?:wd|word)?|pwd")
_TOKEN = re.compile(r"(?<![A-Za-z0-9_+/\-])[A-Za-z0-9_+/\-]{32,}={0,2}(?![A-Za-z0-9_+/\-])")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x+|\*+|\.+|<[^>]*>|\$\{?[A-Z_]+\}?|%[a-z_]+%|\{\{.*\}\}|your[_\-]?\w*|changeme|example\w*|dummy\w*|"
    r"redacted|placeholder|none|null|true|false|os\.environ.*|env\(.*|getenv.*|process\.env.*|settings\.\w+)$"
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
HIGH_ENTROPY_BITS = 4.2
NAMED_ENTROPY_BITS = 3.0


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _is_jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _classes(value: str) -> int:
    return sum(bool(re.search(pattern, value)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]"))


def _looks_generated(value: str, bits: float) -> bool:
    """Random-looking: no placeholder, not a UUID or a plain word/number, with the entropy of a key."""
    if _PLACEHOLDER.match(value) or UUID.match(value) or value.isdigit() or value.isalpha():
        return False
    if "/" in value and value.count("/") > 2:  # a path or URL, not a key
        return False
    return _classes(value) >= 2 and entropy(value) >= bits


@dataclass(frozen=True)
class SecretFinding:
    kind: str
    start: int
    end: int


def find_secrets(text: str, kinds: frozenset[str] | None = None, high_entropy: bool = True) -> list[SecretFinding]:
    """Secrets in `text` with their spans (overlaps removed, the first and longest kept)."""
    found: list[SecretFinding] = []
    for secret in FORMATS:
        if kinds is not None and secret.kind not in kinds:
            continue
        for match in secret.pattern.finditer(text):
            if secret.kind == "jwt" and not _is_jwt(match.group()):
                continue
            group = 1 if secret.pattern.groups and match.group(1) else 0
            found.append(SecretFinding(secret.kind, match.start(group), match.end(group)))
    if high_entropy and (kinds is None or "named-secret" in kinds):
        for match in _NAMED_VALUE.finditer(text):
            group = 1 if match.group(1) else 3
            value = match.group(group)
            if _PLACEHOLDER.match(value):
                continue
            # People choose passwords ("hunter2hunter2"): named as one, any value counts; keys are generated.
            password = group == 3 and _PASSWORD_NAME.search(match.group(2)) and not value.isalpha()
            if password or (len(value) >= 12 and _looks_generated(value, NAMED_ENTROPY_BITS)):
                found.append(SecretFinding("named-secret", match.start(group), match.end(group)))
    if high_entropy and (kinds is None or "high-entropy" in kinds):
        for match in _TOKEN.finditer(text):
            value = match.group()
            if re.fullmatch(r"[0-9a-fA-F]+", value):  # hashes and hex ids
                continue
            if _classes(value) == 3 and _looks_generated(value, HIGH_ENTROPY_BITS):
                found.append(SecretFinding("high-entropy", match.start(), match.end()))
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[SecretFinding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


SECRET_KINDS: dict[str, str] = {
    **{secret.kind: secret.description for secret in FORMATS},
    "named-secret": "a random-looking value given to a name like api_key, secret or token, an Authorization "
    "header, or any value (not a plain word or a placeholder) given to a password",
    "high-entropy": f"a random-looking token of 32+ characters with upper and lower case and digits "
    f"(at least {HIGH_ENTROPY_BITS} bits of entropy per character)",
}
