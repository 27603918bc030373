"""A small local server speaking Prometheus's HTTP API (query_range, GET or form POST), for the cases the
real Prometheus cannot play: requiring a bearer token, or answering with an error of our choosing."""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PrometheusAPI:
    """Answers `/api/v1/query_range` with `value` at every step of the asked window, for one series labelled
    `labels`; with `token` set, anything without `Authorization: Bearer <token>` gets a 401. Records requests."""

    def __init__(self, value: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self.value = value
        self.labels = labels or {}
        self.token: str | None = None
        self.requests: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve(urllib.parse.urlsplit(self.path).query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length).decode())

            def _serve(self, form: str) -> None:
                params = {key: values[-1] for key, values in urllib.parse.parse_qs(form).items()}
                api.requests.append({"path": self.path, "headers": dict(self.headers), "params": params})
                if api.token is not None and self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._answer(401, {"status": "error", "errorType": "unauthorized", "error": "bad token"})
                    return
                if not self.path.startswith("/api/v1/query_range"):
                    self._answer(404, {"status": "error", "errorType": "not_found", "error": self.path})
                    return
                start, end, step = (float(params[key]) for key in ("start", "end", "step"))
                steps = [start + i * step for i in range(math.floor((end - start) / step) + 1)]
                result = [{"metric": api.labels, "values": [[at, str(api.value)] for at in steps]}]
                self._answer(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
