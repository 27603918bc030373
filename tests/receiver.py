"""A webhook receiver on a loopback address, for tests of outgoing webhooks (AIOps and MLOps)."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook receiver on a loopback address: records every request and answers `status`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.status = 200
        self.location = ""
        self.entered = threading.Event()  # set when a request arrived
        self.hold: threading.Event | None = None  # when set, the answer waits until this event is set
        self._requests: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver._requests.append(
                        {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
                    )
                receiver.entered.set()
                if receiver.hold is not None:
                    receiver.hold.wait(10)
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _record

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.handle_error = lambda request, address: None  # e.g. a client refusing our certificate
        self.url = f"http://{host}:{self.server.server_address[1]}/hooks/opsportal"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.server.server_address[1]}/hooks/opsportal"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    def json(self, index: int = -1) -> dict:
        return json.loads(self.requests[index]["body"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
