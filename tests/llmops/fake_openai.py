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
from collections.abc import Mapping

from llmops.demo_llm import WireServer, chat_completion, error


class FakeOpenAI(WireServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0) -> None:
        super().__init__(host, port)
        self.delay = delay
        self.answers: dict[str, str] = {}
        self.default_answer: str | None = None  # None: echo the last user message
        self.failures: deque[tuple[int, float | None, str]] = deque()
        self.requests: list[dict] = []  # every request body, with its arrival time
        self.in_flight = 0
        self.max_in_flight = 0
        self.api_keys: list[str] = []
        self._lock = threading.Lock()
        self.start()

    def dispatch(self, method: str, path: str, raw: bytes, headers: Mapping[str, str]) -> tuple[int, dict, dict]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.api_keys.append(headers.get("Authorization", ""))
        try:
            return self.handle(method, path, raw)
        finally:
            with self._lock:
                self.in_flight -= 1

    # --- controls ---

    def fail(self, times: int, status: int = 500, retry_after: float | None = None, message: str = "") -> None:
        for _ in range(times):
            self.failures.append((status, retry_after, message))

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

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, dict, dict]:
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
        completion = chat_completion(
            completion_id=f"chatcmpl-{len(self.requests)}",
            model=model,
            messages=messages,
            content=content,
            finish=finish,
            usage=word_usage(messages, content),
        )
        return 200, completion, {}


def word_usage(messages: list[dict], content: str) -> tuple[int, int]:
    """(prompt, completion) tokens counted as words, which the tests' expected costs rely on."""
    return sum(len(str(m.get("content", "")).split()) + 4 for m in messages), max(1, len(content.split()))


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
