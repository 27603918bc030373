"""A local OpenAI-compatible server for tests and benchmarks (the only fake: LLM providers are paid services).

It speaks the real chat-completions wire format (`POST /v1/chat/completions` answering
`{"id", "object": "chat.completion", "choices": [{"message": {"role", "content"}, "finish_reason"}],
"usage": {...}}`, errors as `{"error": {"message", "type", "code"}}`), answers deterministically,
and can inject failures: 429 with Retry-After, 500, or slow answers. It counts requests in flight
and remembers the most seen at once, so tests can prove a concurrency bound.

    server = FakeOpenAI()              # listens on 127.0.0.1:<free port>
    server.base_url                    # "http://127.0.0.1:<port>/v1"
    server.answers["capital of France"] = "Paris"   # substring of the last user message -> answer
    server.fail(2, status=429, retry_after=0.2)      # the next 2 requests fail like this
    server.delay = 0.1                 # seconds per answer
    server.close()

Run it alone: `python -m tests.llmops.fake_openai --port 8765 --delay 0.1`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0) -> None:
        self.delay = delay
        self.answers: dict[str, str] = {}
        self.default_answer: str | None = None  # None: echo the last user message
        self.failures: deque[tuple[int, float | None, str]] = deque()
        self.requests: list[dict] = []  # every request body, with its arrival time
        self.in_flight = 0
        self.max_in_flight = 0
        self.api_keys: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
            disable_nagle_algorithm = True  # else small answers wait ~40 ms for the client's ACK

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    fake.api_keys.append(self.headers.get("Authorization", ""))
                try:
                    status, body, headers = fake.handle(self.path, raw)
                    data = json.dumps(body).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def log_message(self, format, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # the listen backlog: many clients connect at once

        self.server = Server((host, port), Handler)
        self.base_url = f"http://{host}:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    # --- controls ---

    def fail(self, times: int, status: int = 500, retry_after: float | None = None, message: str = "") -> None:
        for _ in range(times):
            self.failures.append((status, retry_after, message))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    @property
    def chat_requests(self) -> list[dict]:
        with self._lock:
            return list(self.requests)

    # --- behaviour ---

    def answer_for(self, messages: list[dict]) -> str:
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        if not isinstance(last_user, str):
            last_user = json.dumps(last_user)
        for needle, answer in self.answers.items():
            if needle in last_user:
                return answer
        return self.default_answer if self.default_answer is not None else last_user

    def handle(self, path: str, raw: bytes) -> tuple[int, dict, dict]:
        arrived = time.monotonic()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return 400, error("We could not parse the JSON body of your request.", "invalid_request_error"), {}
        with self._lock:
            self.requests.append({"at": arrived, "path": path, "body": body})
            failure = self.failures.popleft() if self.failures else None
        if not path.rstrip("/").endswith("/chat/completions"):
            return 404, error(f"Unknown path {path}", "invalid_request_error", "unknown_url"), {}
        if self.delay:
            time.sleep(self.delay)
        if failure is not None:
            status, retry_after, message = failure
            headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
            kind = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}.get(status, "invalid_request")
            return status, error(message or f"Injected {status}", kind, kind), headers
        messages = body.get("messages")
        model = body.get("model")
        if not isinstance(messages, list) or not model:
            return 400, error("'messages' and 'model' are required", "invalid_request_error", "missing_field"), {}
        content = self.answer_for(messages)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        words = content.split()
        finish = "stop"
        if max_tokens and len(words) > max_tokens:
            content, finish = " ".join(words[:max_tokens]), "length"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
        completion_tokens = max(1, len(content.split()))
        return (
            200,
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            {},
        )


def error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAI(port=args.port, delay=args.delay)
    print(f"Fake OpenAI server on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()
