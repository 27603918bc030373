"""One outgoing request of an http step, through `opsportal.outbound` (allow-list, pinned addresses, no redirects)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from opsportal.outbound import MAX_RESPONSE_BYTES, connection_to, vet


@dataclass
class Answer:
    status: int
    reason: str
    body: str
    content_type: str


def request(method: str, url: str, headers: dict[str, str], body: bytes | None, *, timeout: float) -> Answer:
    """Send once and read at most MAX_RESPONSE_BYTES of the answer. Raises OutboundRefused for a refused target
    and OSError (timeouts included) for network errors."""
    addresses = vet(url)
    parsed = urlparse(url)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    connection = connection_to(url, addresses)
    connection.timeout = timeout  # read by connect() and for every read of the answer
    try:
        connection.request(method, path, body=body, headers={"User-Agent": "OpsPortal-Runbooks", **headers})
        response = connection.getresponse()
        data = response.read(MAX_RESPONSE_BYTES)
    finally:
        connection.close()
    return Answer(
        status=response.status,
        reason=response.reason or "",
        body=data.decode("utf-8", errors="replace"),
        content_type=response.getheader("Content-Type", "") or "",
    )
