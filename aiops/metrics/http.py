"""Outbound HTTP for collection, on httpx (asyncio), under the portal's allow-list (opsportal.outbound).

Every URL is vetted before each request: its host must resolve to public addresses unless an admin
allow-listed the host or network (OPSPORTAL_OUTBOUND_ALLOWLIST). The request then goes to the very
address that was checked (the URL's host is replaced by it; the Host header and, for HTTPS, SNI and
the certificate check keep the name), so a second DNS answer cannot point it elsewhere. Redirects
are not followed and environment proxies are not used, as for webhooks.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from opsportal.outbound import OutboundRefused, vet

USER_AGENT = "OpsPortal-collector"


@dataclass
class Fetched:
    """A response, or the error that stopped it (`error` set, worded by the library or the allow-list)."""

    status: int = 0
    content_type: str = ""
    body: bytes = b""
    error: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and 200 <= self.status < 300


def auth_header(auth: str, username: str, secret: str) -> dict[str, str]:
    """The Authorization header for `auth` ("none", "bearer", "basic")."""
    if auth == "bearer" and secret:
        return {"Authorization": f"Bearer {secret}"}
    if auth == "basic":
        token = base64.b64encode(f"{username}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def client(concurrency: int = 100) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, limits=limits, headers={"User-Agent": USER_AGENT})


def _pinned(url: str, addresses: list[str] | None) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL to request (host replaced by the checked address), the Host header and the SNI extension."""
    if not addresses:
        return url, {}, {}
    parts = urlsplit(url)
    address = addresses[0]
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), headers, extensions


async def fetch(
    session: httpx.AsyncClient,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    timeout: float,
    max_bytes: int,
) -> Fetched:
    """One request within `timeout` seconds in all; a body over `max_bytes` is an error."""
    started = time.perf_counter()
    result = Fetched()
    try:
        addresses = await asyncio.to_thread(vet, url)
        target, host, extensions = _pinned(url, addresses)
        result = await asyncio.wait_for(
            _request(session, method, target, {**(headers or {}), **host}, data, extensions, timeout, max_bytes),
            timeout,
        )
    except OutboundRefused as exc:
        result.error = str(exc)
    except (TimeoutError, httpx.TimeoutException):
        result.error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        result.error = str(exc) or type(exc).__name__
    except OSError as exc:
        result.error = str(exc) or type(exc).__name__
    result.duration = time.perf_counter() - started
    return result


async def _request(
    session: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
    data: dict[str, str] | None,
    extensions: dict[str, str],
    timeout: float,
    max_bytes: int,
) -> Fetched:
    request = session.build_request(method, url, headers=headers, data=data, timeout=timeout, extensions=extensions)
    response = await session.send(request, stream=True)
    try:
        result = Fetched(status=response.status_code, content_type=response.headers.get("content-type", ""))
        chunks = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                result.error = f"the body is larger than {max_bytes} bytes"
                return result
            chunks.append(chunk)
        result.body = b"".join(chunks)
        if not 200 <= response.status_code < 300:
            result.error = f"HTTP {response.status_code}"
        return result
    finally:
        await response.aclose()
