"""Each check kind's options: validated, normalised and filled with defaults.

`validate_config(kind, config)` returns the config to store; anything wrong raises `InvalidInput`
with the field as the API shows it (`config.url`, `config.expected_status`, ...). Unknown options are
refused too, so a typo does not silently leave an assertion out.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import jsonpath

from opsportal.errors import InvalidInput

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DNS_RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "PTR", "CAA")
MAX_BODY_CHARS = 64 * 1024
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*\.?")
STATUS_ITEM = re.compile(r"([1-5])xx|(\d{3})(?:-(\d{3}))?")

HTTP_DEFAULTS: dict[str, Any] = {
    "url": "",
    "method": "GET",
    "headers": {},
    "body": "",
    "expected_status": ["200-299"],
    "max_latency_ms": None,
    "keyword": "",
    "keyword_regex": False,
    "keyword_absent": False,
    "json_path": "",
    "json_expected": None,
    "follow_redirects": True,
    "verify_tls": True,
    "tls_min_days_left": 0,
}
TCP_DEFAULTS: dict[str, Any] = {"host": "", "port": None}
DNS_DEFAULTS: dict[str, Any] = {"name": "", "record_type": "A", "expected": [], "nameservers": [], "port": 53}
TLS_DEFAULTS: dict[str, Any] = {"host": "", "port": 443, "server_name": "", "min_days_left": 14, "verify": True}
DEFAULTS: dict[str, dict[str, Any]] = {
    "http": HTTP_DEFAULTS,
    "tcp": TCP_DEFAULTS,
    "dns": DNS_DEFAULTS,
    "tls": TLS_DEFAULTS,
    "heartbeat": {},
}


def validate_config(kind: str, config: object) -> dict[str, Any]:
    """`config` for a check of `kind`, checked and completed with the defaults."""
    if kind not in DEFAULTS:
        raise InvalidInput(f"unknown kind {kind!r}; one of {', '.join(DEFAULTS)}.", field="kind")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise InvalidInput("must be an object of options.", field="config")
    defaults = DEFAULTS[kind]
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        known = ", ".join(defaults) or "none (a heartbeat's schedule is in period/grace/cron)"
        raise InvalidInput(f"unknown option for a {kind} check; options: {known}.", field=f"config.{unknown[0]}")
    merged = {**defaults, **config}
    return {"http": _http, "tcp": _tcp, "dns": _dns, "tls": _tls, "heartbeat": dict}[kind](merged)


def _http(config: dict[str, Any]) -> dict[str, Any]:
    config["url"] = http_url(config["url"], field="config.url")
    method = config["method"]
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise InvalidInput(f"one of {', '.join(HTTP_METHODS)}.", field="config.method")
    config["method"] = method.upper()
    headers = config["headers"]
    if not isinstance(headers, dict):
        raise InvalidInput("must be an object of header names to values.", field="config.headers")
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            raise InvalidInput(f"{name!r} is not a valid header name.", field="config.headers")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise InvalidInput("must be a one-line string.", field=f"config.headers.{name}")
    _string(config, "body", MAX_BODY_CHARS)
    config["expected_status"] = _expected_status(config["expected_status"])
    if config["max_latency_ms"] is not None:
        config["max_latency_ms"] = _number(config, "max_latency_ms", 1, 600_000)
    _string(config, "keyword", 1000)
    for flag in ("keyword_regex", "keyword_absent", "follow_redirects", "verify_tls"):
        _boolean(config, flag)
    if config["keyword_regex"] and config["keyword"]:
        try:
            re.compile(config["keyword"])
        except re.error as exc:
            raise InvalidInput(f"not a regular expression: {exc}.", field="config.keyword") from None
    _string(config, "json_path", 1000)
    if config["json_path"]:
        try:
            compiled_json_path(config["json_path"])
        except jsonpath.JSONPathError as exc:
            first_line = str(exc).splitlines()[0]
            raise InvalidInput(f"not a JSON path: {first_line}.", field="config.json_path") from None
    elif config["json_expected"] is not None:
        raise InvalidInput("needs a json_path to compare with.", field="config.json_expected")
    config["tls_min_days_left"] = int(_number(config, "tls_min_days_left", 0, 3650))
    return config


def _tcp(config: dict[str, Any]) -> dict[str, Any]:
    config["host"] = host_name(config["host"], field="config.host")
    config["port"] = _port(config, "port")
    return config


def _dns(config: dict[str, Any]) -> dict[str, Any]:
    config["name"] = host_name(config["name"], field="config.name")
    record_type = config["record_type"]
    if not isinstance(record_type, str) or record_type.upper() not in DNS_RECORD_TYPES:
        raise InvalidInput(f"one of {', '.join(DNS_RECORD_TYPES)}.", field="config.record_type")
    config["record_type"] = record_type.upper()
    for key in ("expected", "nameservers"):
        values = config[key]
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise InvalidInput("must be a list of strings.", field=f"config.{key}")
        config[key] = [v.strip() for v in values]
    for server in config["nameservers"]:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidInput(f"{server!r} is not an IP address.", field="config.nameservers") from None
    config["port"] = _port(config, "port")
    return config


def _tls(config: dict[str, Any]) -> dict[str, Any]:
    config["host"] = host_name(config["host"], field="config.host")
    config["port"] = _port(config, "port")
    if config["server_name"]:
        config["server_name"] = host_name(config["server_name"], field="config.server_name")
    config["min_days_left"] = int(_number(config, "min_days_left", 0, 3650))
    _boolean(config, "verify")
    return config


def http_url(value: object, *, field: str) -> str:
    """An absolute http(s) URL with a host, or InvalidInput naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required: an http:// or https:// URL.", field=field)
    url = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidInput("is not a valid URL (it contains spaces or control characters).", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"is not a valid URL: {exc}.", field=field) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("is not a valid URL: it must start with http:// or https://.", field=field)
    if not parts.hostname:
        raise InvalidInput("is not a valid URL: it has no host.", field=field)
    _host_or_address(parts.hostname, field=field)
    if port == 0:
        raise InvalidInput("is not a valid URL: port 0.", field=field)
    return url


def host_name(value: object, *, field: str) -> str:
    """A DNS name or an IP address (no scheme, no port)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required: a host name or IP address.", field=field)
    host = value.strip()
    _host_or_address(host, field=field)
    return host


def _host_or_address(host: str, *, field: str) -> None:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode()
    except UnicodeError:
        raise InvalidInput(f"{host!r} is not a valid host name.", field=field) from None
    if not HOST_NAME.fullmatch(ascii_host):
        raise InvalidInput(f"{host!r} is not a valid host name.", field=field)


@functools.lru_cache(maxsize=1024)
def compiled_json_path(path: str) -> jsonpath.JSONPath:
    return jsonpath.compile(path)


@functools.lru_cache(maxsize=1024)
def status_ranges(items: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """("200-299", "301", "4xx") as (low, high) pairs."""
    ranges = []
    for item in items:
        match = STATUS_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(item)
        if match.group(1):
            low = int(match.group(1)) * 100
            ranges.append((low, low + 99))
        else:
            low = int(match.group(2))
            ranges.append((low, int(match.group(3) or low)))
    return tuple(ranges)


def _expected_status(value: object) -> list[str]:
    if isinstance(value, (int, str)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidInput('a list of codes or ranges, e.g. ["200-299", 301, "4xx"].', field="config.expected_status")
    items = []
    for item in value:
        text = str(item).strip() if isinstance(item, (int, str)) and not isinstance(item, bool) else ""
        match = STATUS_ITEM.fullmatch(text)
        valid = match is not None and (
            match.group(1) or (100 <= int(match.group(2)) <= int(match.group(3) or match.group(2)) <= 599)
        )
        if not valid:
            raise InvalidInput(
                f"{item!r} is not a status code (100-599), a range such as 200-299, or a class such as 2xx.",
                field="config.expected_status",
            )
        items.append(text)
    return items


def _string(config: dict[str, Any], key: str, max_length: int) -> None:
    value = config[key]
    if value is None:
        value = config[key] = ""
    if not isinstance(value, str):
        raise InvalidInput("must be a string.", field=f"config.{key}")
    if len(value) > max_length:
        raise InvalidInput(f"at most {max_length} characters.", field=f"config.{key}")


def _boolean(config: dict[str, Any], key: str) -> None:
    if not isinstance(config[key], bool):
        raise InvalidInput("must be true or false.", field=f"config.{key}")


def _number(config: dict[str, Any], key: str, low: float, high: float) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(f"a number from {low:g} to {high:g}.", field=f"config.{key}")
    return value


def _port(config: dict[str, Any], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput("required: a port from 1 to 65535.", field=f"config.{key}")
    return value
