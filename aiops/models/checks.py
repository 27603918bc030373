"""Uptime checks: HTTP(S), TCP, DNS, TLS expiry and heartbeat checks, their results and status pages."""

from __future__ import annotations

__all__: list[str] = []
