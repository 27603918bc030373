"""The demo model: a local OpenAI-compatible endpoint that answers from datasets' expected outputs.

`make run` has no internet and no API key, so the demo provider points here
(`python manage.py serve_demo_llm`, on `OPSPORTAL_DEMO_LLM_BIND`). It is not a language model:
it looks up the dataset item whose input values all appear in the last user message and answers
with that item's expected output, except for a deterministic share of requests where it answers
like a weak model would: a wrong answer, a refusal, a sloppy paraphrase or a padded one. A system
prompt that asks to be concise makes it drop the detail (as the demo's prompt v2 does). Latency
depends on the answer's length, and every answer reports token usage.

It speaks the real wire format, so the official `openai` client and the engine use it like any
provider: `POST /v1/chat/completions` answers `{"id", "object": "chat.completion", "created",
"model", "choices": [{"index", "message": {"role", "content"}, "finish_reason"}], "usage"}`,
`GET /v1/models` lists the demo models, errors are `{"error": {"message", "type", "param",
"code"}}`. `WireServer` (the HTTP part) is shared with the tests' fake (tests/llmops/fake_openai.py).

Pure Python: no Django here, so the server and its behaviour can be tested without a database.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The models the demo endpoint lists; it answers any model id it is asked for.
DEMO_MODELS = {
    # model id: share of answers that go wrong
    "demo-small": 0.3,
    "demo-large": 0.1,
}
DEFAULT_ERROR_RATE = 0.2

# (input values that identify an item, its expected output)
Knowledge = list[tuple[list[str], str]]


def error(message: str, kind: str, code: str | None = None) -> dict:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def count_tokens(text: str) -> int:
    """A rough token count (about 4 characters per token, at least one per word), as usage needs."""
    return max(len(text.split()), (len(text) + 3) // 4)


def chat_completion(
    *, completion_id: str, model: str, messages: list[dict], content: str, finish: str,
    usage: tuple[int, int] | None = None,
) -> dict:  # fmt: skip
    """A `chat.completion` object; `usage` (prompt, completion tokens) is counted from the text if not given."""
    prompt_tokens, completion_tokens = usage or (
        sum(count_tokens(str(m.get("content", ""))) + 4 for m in messages),
        max(1, count_tokens(content)),
    )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def truncate(content: str, max_tokens: object) -> tuple[str, str]:
    """Cut `content` to `max_tokens` words, as a provider stops at the limit; (content, finish_reason)."""
    words = content.split()
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 < max_tokens < len(words):
        return " ".join(words[:max_tokens]), "length"
    return content, "stop"


class WireServer:
    """A threaded HTTP server that hands every request to `self.handle(method, path, raw)`.

    `handle` returns (status, JSON body, extra headers). Subclasses answer the API.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        wire = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
            disable_nagle_algorithm = True  # else small answers wait ~40 ms for the client's ACK

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = wire.dispatch(method, self.path, raw, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:
                self._answer("GET")

            def log_message(self, format, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # the listen backlog: many clients connect at once

        self.server = Server((host, port), Handler)
        self.host, self.port = host, self.server.server_address[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self.thread: threading.Thread | None = None

    def start(self) -> WireServer:
        """Serve in a background thread."""
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever(0.2)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(5)

    def dispatch(self, method: str, path: str, raw: bytes, headers: Mapping[str, str]) -> tuple[int, dict, dict]:
        """Answer one request; `headers` reads case-insensitively. Subclasses may count or inspect here."""
        return self.handle(method, path, raw)

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, dict, dict]:
        raise NotImplementedError


def _share(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts`: the same request always goes the same way."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _last_user_message(messages: list[dict]) -> str:
    content = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    return content if isinstance(content, str) else json.dumps(content)


def _system_prompt(messages: list[dict]) -> str:
    return " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")


class DemoModel(WireServer):
    """The demo endpoint. `knowledge` gives the (input values, expected output) pairs it answers from.

    `knowledge` is called again every `refresh_seconds`, so datasets created while it runs are known
    too. `latency` scales the simulated thinking time (0 answers at once, as tests want).
    """

    def __init__(
        self, knowledge: Callable[[], Knowledge], host: str = "127.0.0.1", port: int = 0, latency: float = 1.0,
        refresh_seconds: float = 30.0,
    ) -> None:  # fmt: skip
        super().__init__(host, port)
        self.knowledge_source = knowledge
        self.latency = latency
        self.refresh_seconds = refresh_seconds
        self._knowledge: Knowledge = []
        self._loaded_at = -1e9
        self._lock = threading.Lock()
        self._served = 0

    def knowledge(self) -> Knowledge:
        with self._lock:
            if time.monotonic() - self._loaded_at > self.refresh_seconds:
                # Longest inputs first: the most specific item wins when several match.
                pairs = [(values, answer) for values, answer in self.knowledge_source() if values and answer]
                self._knowledge = sorted(pairs, key=lambda pair: -sum(len(v) for v in pair[0]))
                self._loaded_at = time.monotonic()
            return self._knowledge

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, dict, dict]:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route.endswith("/models"):
            models = [
                {"id": name, "object": "model", "created": 0, "owned_by": "opsportal-demo"} for name in DEMO_MODELS
            ]
            return 200, {"object": "list", "data": models}, {}
        if method != "POST" or not route.endswith("/chat/completions"):
            return 404, error(f"Unknown request {method} {path}", "invalid_request_error", "unknown_url"), {}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return 400, error("We could not parse the JSON body of your request.", "invalid_request_error"), {}
        if not isinstance(body, dict):
            return 400, error("The body must be a JSON object.", "invalid_request_error"), {}
        messages, model = body.get("messages"), body.get("model")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return (
                400,
                error("'messages' must be a non-empty list of messages", "invalid_request_error", "messages"),
                {},
            )
        if not isinstance(model, str) or not model:
            return 400, error("'model' is required", "invalid_request_error", "model"), {}
        if body.get("stream"):
            return 400, error("The demo model does not stream; send stream=false.", "invalid_request_error"), {}
        content = self.answer(model, messages)
        content, finish = truncate(content, body.get("max_tokens") or body.get("max_completion_tokens"))
        if self.latency:
            # A first-token wait plus a per-token rate, varied per request, like a hosted model.
            wait = 0.25 + 0.5 * _share("latency", model, content) + 0.012 * count_tokens(content)
            time.sleep(wait * self.latency)
        with self._lock:
            self._served += 1
            number = self._served
        completion_id = f"chatcmpl-demo-{number}"
        return 200, chat_completion(completion_id=completion_id, model=model, messages=messages,
                                    content=content, finish=finish), {}  # fmt: skip

    def answer(self, model: str, messages: list[dict]) -> str:
        """The expected output of the item the question is about, sometimes spoiled as a weak model would."""
        question = _last_user_message(messages)
        lowered = question.lower()
        knowledge = self.knowledge()
        match = next(
            (i for i, (values, _answer) in enumerate(knowledge) if all(v.lower() in lowered for v in values)), None
        )
        if match is None:
            return "I don't know: the demo model only answers questions from the portal's datasets."
        expected = knowledge[match][1]
        system = _system_prompt(messages)
        concise = any(word in system.lower() for word in ("concise", "one short sentence", "brief"))
        roll = _share(model, system, question)
        error_rate = DEMO_MODELS.get(model, DEFAULT_ERROR_RATE)
        if concise:
            error_rate = min(0.9, error_rate * 1.5)
        if roll >= error_rate:
            return _shorten(expected) if concise else expected
        # Which kind of mistake, fixed by the request too.
        kind = _share("kind", model, question)
        if kind < 0.3 and len(knowledge) > 1:
            return knowledge[(match + 1 + int(kind * 100)) % len(knowledge)][1]  # another item's answer
        if kind < 0.5:
            return "Sorry, I can't help with that."
        if kind < 0.75:
            return _shorten(expected).lower().rstrip(".") + ", I think"
        return f"Great question! {expected} Let me know if there is anything else I can help you with today."


def _shorten(answer: str) -> str:
    """The gist: the first clause, as a terse model answers."""
    for mark in (":", ";", ", "):
        if mark in answer:
            head = answer.split(mark, 1)[0].strip()
            if len(head.split()) >= 2:
                return head.rstrip(".") + "."
    return answer
