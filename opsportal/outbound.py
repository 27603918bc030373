"""Outgoing HTTP for webhooks, shared by every app.

Outgoing URLs must resolve to public addresses unless an admin lists the host or
network in OPSPORTAL_OUTBOUND_ALLOWLIST. The connection goes to the very addresses
that were checked (a second DNS answer cannot point it elsewhere), redirects are
not followed, and environment proxies are not used.

Every signed call the portal makes carries the same headers (`signed_headers`):
`X-OpsPortal-Signature: t=<unix>,v1=<hex>` where v1 is HMAC-SHA256 with the
receiver's secret over "<unix>." + body (left out when there is no secret),
`X-OpsPortal-Timestamp: <unix>`, `X-OpsPortal-Event` and `X-OpsPortal-Delivery`
(an id that stays the same when a delivery is retried, to deduplicate on).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urlparse

from django.conf import settings

TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-OpsPortal-Signature"
MAX_RESPONSE_BYTES = 64 * 1024


class OutboundRefused(Exception):
    """The target URL is not allowed (scheme, or it resolves to a private address)."""


class HTTPStatusError(Exception):
    """The receiver answered with a status other than 2xx."""

    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code


def check_outbound_url(url: str) -> None:
    """Refuse non-HTTP(S) URLs and hosts resolving to non-public addresses unless allow-listed."""
    vet(url)


def vet(url: str) -> list[str] | None:
    """The addresses `url`'s host resolves to, all allowed; None when the host name itself is allow-listed."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise OutboundRefused(f"{url!r} is not an http(s) URL")
    host = parsed.hostname
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundRefused(f"{url!r} has a bad port ({exc})") from None
    return vet_host(host, port)


def vet_host(host: str, port: int) -> list[str] | None:
    """The addresses `host` resolves to, all allowed; None when the host name itself is allow-listed.

    For connections that are not HTTP (uptime checks' TCP, TLS and DNS targets); `vet` uses it for URLs.
    """
    allow = settings.OPSPORTAL_OUTBOUND_ALLOWLIST
    if host in allow:
        return None
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global and not any(address in network for network in networks):
            raise OutboundRefused(
                f"{host} resolves to {address}, which is not a public address; "
                "an admin can allow it in OPSPORTAL_OUTBOUND_ALLOWLIST"
            )
        if info[4][0] not in addresses:
            addresses.append(info[4][0])
    return addresses


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex>` where v1 = HMAC-SHA256(secret, "<unix>." + body)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_headers(*, secret: str, body: bytes, event: str, delivery_id: str) -> dict[str, str]:
    """The headers of a signed call, timestamped now; no signature header when `secret` is empty."""
    timestamp = int(time.time())
    headers = {
        "X-OpsPortal-Timestamp": str(timestamp),
        "X-OpsPortal-Event": event,
        "X-OpsPortal-Delivery": delivery_id,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def connection_to(url: str, addresses: list[str] | None) -> http.client.HTTPConnection:
    """A connection to `url`'s host that, when `addresses` is given, connects only to those addresses.

    The Host header and (for HTTPS) the certificate check still use the host name.
    """
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if parsed.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parsed.hostname, port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parsed.hostname, port, timeout=TIMEOUT_SECONDS)
    if addresses is not None:

        def connect_to_checked(_: object, timeout: float, source_address: object = None) -> socket.socket:
            error: OSError = OSError(f"no address to connect to for {parsed.hostname}")
            for address in addresses:
                try:
                    return socket.create_connection((address, port), timeout, source_address)
                except OSError as exc:
                    error = exc
            raise error

        # http.client opens its socket through this attribute (in HTTPConnection.connect).
        connection._create_connection = connect_to_checked
    return connection


def post_json(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """POST `body` to `url` once; returns the 2xx status. Other statuses (redirects too) raise HTTPStatusError."""
    addresses = vet(url)
    parsed = urlparse(url)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    connection = connection_to(url, addresses)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "OpsPortal", **(headers or {})},
        )
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise HTTPStatusError(response.status)
    return response.status
