"""Runs checks on asyncio: HTTP(S) with httpx, TCP and TLS with asyncio streams, DNS with dnspython.

`run_many(specs)` runs a batch at once (at most `concurrency` in flight) and returns one `Outcome`
per spec, in order; it never raises for a check's failure. Every target is vetted by
`opsportal.outbound` first (internal addresses only when allow-listed) and the connection goes to
the address that was vetted (the host name still sets the Host header and TLS server name).
Redirects are followed hop by hop, each hop vetted. An error is what the library said, prefixed with
the exception's class (`ConnectError: [Errno 111] Connection refused`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import ipaddress
import json
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import dns.asyncresolver
import httpcore
import httpx
from cryptography import x509

from opsportal import outbound

from .config import compiled_json_path, status_ranges

MAX_REDIRECTS = 10
MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "OpsPortal-Checks/1"
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class CheckSpec:
    """What the runner needs of a check (the services build it from a `Check` row, or from a form)."""

    kind: str
    config: dict[str, Any]
    timeout: float = 10.0
    upside_down: bool = False
    id: int | None = None


@dataclass
class Outcome:
    """One run's result, as stored in `CheckResult`."""

    up: bool
    latency_ms: float | None = None
    status_code: int | None = None
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))


class CheckFailed(Exception):
    """The target answered, but not as the check expects (the message says how)."""


def run_many(specs: list[CheckSpec], *, concurrency: int = 200) -> list[Outcome]:
    """Run `specs` on a fresh event loop; one outcome per spec, in the same order."""
    if not specs:
        return []
    return asyncio.run(run_batch(specs, concurrency=concurrency))


async def run_batch(specs: list[CheckSpec], *, concurrency: int = 200) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(specs)
    pending = iter(enumerate(specs))
    async with Clients() as clients:

        async def lane() -> None:
            # `concurrency` lanes take the next check when theirs is done (cheaper than a task per check).
            for index, spec in pending:
                outcomes[index] = await run_one(spec, clients)

        await asyncio.gather(*(lane() for _ in range(min(concurrency, len(specs)))))
    return outcomes  # type: ignore[return-value]


async def run_one(spec: CheckSpec, clients: Clients) -> Outcome:
    """Run one check (its whole time bounded by its timeout) and apply upside-down."""
    started = time.perf_counter()
    at = datetime.datetime.now(datetime.UTC)
    try:
        async with asyncio.timeout(spec.timeout):
            outcome = await KINDS[spec.kind](spec, clients)
    except TimeoutError:
        outcome = Outcome(up=False, error=f"TimeoutError: no answer within {spec.timeout:g} s")
    except outbound.OutboundRefused as exc:
        outcome = Outcome(up=False, error=f"Refused by the outbound allow-list: {exc}", details={"refused": True})
    except CheckFailed as exc:
        outcome = exc.args[1] if len(exc.args) > 1 else Outcome(up=False)
        outcome.up = False
        outcome.error = str(exc.args[0])
    except Exception as exc:  # every library error is a failed run, worded as the library did
        outcome = Outcome(up=False, error=describe(exc))
    outcome.at = at
    if outcome.latency_ms is None:
        outcome.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    if spec.upside_down and not outcome.details.get("refused"):
        outcome = invert(outcome)
    return outcome


def describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def invert(outcome: Outcome) -> Outcome:
    """Upside down: a passing check is down, a failing one is up (its error kept in details)."""
    if outcome.up:
        answered = f"HTTP {outcome.status_code}" if outcome.status_code else "it answered"
        outcome.error = f"Upside down: the check passed ({answered})"
    else:
        outcome.details["inverted_error"] = outcome.error
        outcome.error = ""
    outcome.up = not outcome.up
    return outcome


class Clients:
    """What a batch's HTTP checks share: an httpx client that builds their requests (default headers,
    timeouts, URL handling), and two transports, certificates verified and not (for verify_tls off).

    Requests go straight to the transport: the client's auth, cookie and redirect layers have nothing
    to do for a check (redirects are followed here, hop by hop, each hop vetted), and skipping them
    is a sixth of the CPU a check costs. Each request opens a connection of its own
    (`OwnConnectionTransport`), so a check's latency includes connecting and its TLS details are its
    own connection's.
    """

    async def __aenter__(self) -> Clients:
        self.client = httpx.AsyncClient(follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT})
        self.verified = OwnConnectionTransport(verified_context())
        self.unverified = OwnConnectionTransport(unverified_context())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def transport(self, *, verify: bool) -> OwnConnectionTransport:
        return self.verified if verify else self.unverified


class OwnConnectionTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request on a new connection, closed with its response.

    httpx's own transport keeps a pool, which a check never reuses (no keep-alive) and whose
    bookkeeping grows with the connections in flight: hundreds at once cost more there than the
    request itself. httpcore's errors keep their names and messages (ConnectError, ReadTimeout, ...).
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.ssl_context = ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        connection = httpcore.AsyncHTTPConnection(
            httpcore.Origin(url.raw_scheme, url.raw_host, port), ssl_context=self.ssl_context
        )
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await connection.handle_async_request(core_request)
        except BaseException:
            await connection.aclose()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ConnectionStream(response, connection),
            extensions=response.extensions,
        )


class _ConnectionStream(httpx.AsyncByteStream):
    def __init__(self, response: httpcore.Response, connection: httpcore.AsyncHTTPConnection) -> None:
        self.response = response
        self.connection = connection

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.response.aiter_stream():
            yield part

    async def aclose(self) -> None:
        try:
            await self.response.aclose()
        finally:
            await self.connection.aclose()


@functools.cache
def verified_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@functools.cache
def unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def vetted_addresses(host: str, port: int) -> list[str] | None:
    """`outbound.vet_host`, off the event loop when the host is a name that needs resolving."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return await asyncio.to_thread(outbound.vet_host, host, port)
    return outbound.vet_host(host, port)


async def _http(spec: CheckSpec, clients: Clients) -> Outcome:
    config = spec.config
    transport = clients.transport(verify=config.get("verify_tls", True))
    method = config.get("method", "GET")
    url = config["url"]
    body = (config.get("body") or "").encode() or None
    headers = dict(config.get("headers") or {})
    started = time.perf_counter()
    redirects: list[str] = []
    while True:
        request = await _pinned_request(clients.client, method, url, headers, body, spec.timeout)
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            location = response.headers.get("location")
            if config.get("follow_redirects", True) and response.status_code in REDIRECT_STATUSES and location:
                if len(redirects) >= MAX_REDIRECTS:
                    raise CheckFailed(f"TooManyRedirects: more than {MAX_REDIRECTS} redirects")
                url = urljoin(url, location)
                redirects.append(url)
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            tls = _response_tls(response) if url.startswith("https:") else None
            content = await _read_capped(response)
        finally:
            await response.aclose()
        break
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    outcome = Outcome(up=True, latency_ms=latency_ms, status_code=response.status_code, details={})
    if redirects:
        outcome.details["redirects"] = redirects
    if tls:
        outcome.details["tls"] = tls
    _http_assertions(config, response, content, outcome)
    return outcome


async def _pinned_request(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
) -> httpx.Request:
    """A request to the address that `url`'s host was vetted to (Host header and SNI keep the name)."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await vetted_addresses(parsed.host, port)
    extensions: dict[str, Any] = {}
    target = parsed
    if addresses is not None and addresses[0] != parsed.host:
        target = parsed.copy_with(host=addresses[0])
        headers = {**headers, "Host": parsed.netloc.decode("ascii")}
        if parsed.scheme == "https":
            extensions["sni_hostname"] = parsed.host
    return client.build_request(method, target, headers=headers, content=body, timeout=timeout, extensions=extensions)


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _response_tls(response: httpx.Response) -> dict[str, Any] | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return certificate_details(ssl_object) if ssl_object is not None else None


def certificate_details(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any] | None:
    """The peer certificate's expiry and names, read from the connection (verified or not)."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    certificate = x509.load_der_x509_certificate(der)
    not_after = certificate.not_valid_after_utc
    days_left = (not_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
    return {
        "not_after": not_after.isoformat(),
        "days_left": round(days_left, 2),
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "version": ssl_object.version(),
    }


def _http_assertions(config: dict[str, Any], response: httpx.Response, content: bytes, outcome: Outcome) -> None:
    code = response.status_code
    ranges = status_ranges(tuple(config.get("expected_status") or ("200-299",)))
    if not any(low <= code <= high for low, high in ranges):
        expected = ", ".join(config.get("expected_status") or ("200-299",))
        raise CheckFailed(f"HTTP {code} {response.reason_phrase}; expected {expected}", outcome)
    limit = config.get("max_latency_ms")
    if limit is not None and outcome.latency_ms is not None and outcome.latency_ms > limit:
        raise CheckFailed(f"took {outcome.latency_ms:.0f} ms, over the limit of {limit:g} ms", outcome)
    tls = outcome.details.get("tls")
    min_days = config.get("tls_min_days_left") or 0
    if tls and min_days and tls["days_left"] < min_days:
        raise CheckFailed(
            f"TLS certificate expires in {tls['days_left']:.1f} days ({tls['not_after']}), fewer than {min_days}",
            outcome,
        )
    keyword = config.get("keyword")
    if keyword:
        text = content.decode(response.encoding or "utf-8", errors="replace")
        found = re.search(keyword, text) is not None if config.get("keyword_regex") else keyword in text
        if found and config.get("keyword_absent"):
            raise CheckFailed(f"the body contains {keyword!r}, which must be absent", outcome)
        if not found and not config.get("keyword_absent"):
            raise CheckFailed(f"the body does not contain {keyword!r}", outcome)
    path = config.get("json_path")
    if path:
        try:
            document = json.loads(content)
        except ValueError as exc:
            raise CheckFailed(f"the body is not JSON ({exc}), so JSON path {path} cannot match", outcome) from None
        matches = compiled_json_path(path).findall(document)
        if not matches:
            raise CheckFailed(f"JSON path {path} matches nothing in the body", outcome)
        expected = config.get("json_expected")
        found = json.dumps(matches[0])
        # A path such as "$" would keep the whole document with every result: long values are cut.
        outcome.details["json_value"] = matches[0] if len(found) <= 1000 else found[:1000] + "…"
        if expected is not None and matches[0] != expected:
            shown = found if len(found) <= 200 else found[:200] + "…"
            raise CheckFailed(f"JSON path {path} is {shown}, expected {json.dumps(expected)}", outcome)


async def _tcp(spec: CheckSpec, clients: Clients) -> Outcome:
    host, port = spec.config["host"], spec.config["port"]
    addresses = await vetted_addresses(host, port) or [host]
    started = time.perf_counter()
    _, writer = await _connect(addresses, port)
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    writer.close()
    await _closed(writer)
    return Outcome(up=True, latency_ms=latency_ms, details={"address": addresses[0]})


async def _connect(
    addresses: list[str], port: int, **options: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    error: Exception = OSError("no address to connect to")
    for address in addresses:
        try:
            return await asyncio.open_connection(address, port, **options)
        except OSError as exc:
            error = exc
    raise error


async def _closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


async def _tls(spec: CheckSpec, clients: Clients) -> Outcome:
    config = spec.config
    host, port = config["host"], config["port"]
    server_name = config.get("server_name") or host
    addresses = await vetted_addresses(host, port) or [host]
    started = time.perf_counter()
    context = verified_context() if config.get("verify", True) else unverified_context()
    _, writer = await _connect(addresses, port, ssl=context, server_hostname=server_name)
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    try:
        details = certificate_details(writer.get_extra_info("ssl_object")) or {}
    finally:
        writer.close()
        await _closed(writer)
    outcome = Outcome(up=True, latency_ms=latency_ms, details={"tls": details})
    min_days = config.get("min_days_left", 14)
    if details and details["days_left"] < min_days:
        raise CheckFailed(
            f"TLS certificate expires in {details['days_left']:.1f} days ({details['not_after']}), "
            f"fewer than {min_days}",
            outcome,
        )
    return outcome


async def _dns(spec: CheckSpec, clients: Clients) -> Outcome:
    config = spec.config
    resolver = dns.asyncresolver.Resolver()
    if config.get("nameservers"):
        for server in config["nameservers"]:
            await vetted_addresses(server, config.get("port", 53))
        resolver.nameservers = list(config["nameservers"])
        resolver.port = config.get("port", 53)
    started = time.perf_counter()
    answer = await resolver.resolve(config["name"], config.get("record_type", "A"), lifetime=spec.timeout)
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    answers = sorted(record.to_text().strip('"') for record in answer)
    outcome = Outcome(up=True, latency_ms=latency_ms, details={"answers": answers, "ttl": answer.rrset.ttl})
    normalised = {a.rstrip(".").lower() for a in answers}
    missing = [e for e in config.get("expected") or [] if e.rstrip(".").lower() not in normalised]
    if missing:
        record = f"{config['name']} {config.get('record_type', 'A')}"
        raise CheckFailed(f"{record} answers {answers}; missing {missing}", outcome)
    return outcome


async def _heartbeat(spec: CheckSpec, clients: Clients) -> Outcome:
    raise CheckFailed("a heartbeat is not run; it is pinged (see the ping URL)")


KINDS = {"http": _http, "tcp": _tcp, "dns": _dns, "tls": _tls, "heartbeat": _heartbeat}
