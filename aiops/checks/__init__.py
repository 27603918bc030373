"""The uptime-check engine: what a check of each kind does, without the database.

- `config`: each kind's options, validated and filled with defaults (`validate_config`); a bad option
  is an `InvalidInput` naming it (`config.url`, `config.json_path`, ...).
- `runner`: runs checks on asyncio (httpx for HTTP(S), asyncio streams for TCP and TLS, dnspython for
  DNS), many at once, each target vetted by `opsportal.outbound`; errors as the library worded them.
- `heartbeat`: when a push check is late (period + grace, or a cron schedule in a time zone).
- `schedule`: the state machine (retries, pending, down, recovered) and the next due time.

The services (`aiops.services.checks`) claim due checks, call the runner and store what it returns.
"""
