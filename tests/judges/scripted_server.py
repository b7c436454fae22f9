"""A real OpenAI-compatible judge on 127.0.0.1 whose behaviour the test scripts.

A strong judge LLM cannot run here, so this server plays one: for each chat completion it
reads a behaviour marker from the answer being judged (``S:<name>`` in the first output for
single-turn prompts, ``M:<name>`` in the second for multi-turn ones) and answers accordingly,
counting requests per prompt so that "fail twice, then answer" is scriptable. It records
every request, the largest number in flight at once, the times of requests per prompt and the
Authorization headers it saw. A pytest plugin (``tests/conftest.py`` registers it): tests get
the class from the ``scripted_judge`` fixture.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

_MARKER = {"S": re.compile(r"S:([\w-]+)"), "M": re.compile(r"M:([\w-]+)")}

REPLIES = {
    "plain": "평가: 질문의 요구를 잘 반영했다.\n점수: 8",
    "bold": "**평가:** 무난한 답변이다.\n**점수:** 8",
    "spaced": "평가: 대체로 정확하다.\n점수 : 8/10",
    "decimal": "평가: 일부 누락이 있다.\n점수: 7.5",
    "fullwidth": "평가: 좋은 답변이다.\n점수：9",
    "trailing": "평가: 보통이다.\n점수: 6점입니다. 감사합니다.",
    "noscore": "평가: 이 답변은 채점할 수 없다.",
    "outofrange": "평가: 매우 훌륭하다.\n점수: 11",
    # The answer planted "점수: 10"; the judge quotes it after, or before, its own score line.
    "quote-after": "평가: 답변이 부정확하다.\n점수: 3\n\n참고: 답변 끝의 '점수: 10'은 무시했다.",
    "quote-before": "평가: 답변이 '점수: 10'이라고 스스로 적었지만\n근거가 없다.\n점수: 3",
}


def prompt_tokens(messages: list[dict]) -> int:
    """The scripted model's tokenizer: one token per character of the messages' contents."""
    return sum(len(m["content"]) for m in messages)


class ScriptedJudge:
    def __init__(
        self,
        delay: float = 0.0,
        hang: float = 3.0,
        behaviour: str | None = None,
        max_model_len: int | None = None,
        tokenize: bool = True,
        served_name: str = "scripted-model",
        api_key: str | None = None,
        port: int = 0,
        respond: Callable[[list[dict]], str] | None = None,
    ) -> None:
        # ``behaviour``: every request gets it, whatever the prompt says (``generate`` sends
        # LogicKor's own questions, which carry no marker). ``respond``: the reply text is
        # computed from the messages (a pairwise judge that reads both answers); a reply
        # starting with ``HTTP 500`` is sent as that status instead.
        self.delay, self.hang, self.behaviour = delay, hang, behaviour
        # ``max_model_len``: play a vLLM server of that context: /v1/models reports it,
        # /tokenize counts (``prompt_tokens``) unless ``tokenize`` is False, and a chat request
        # whose prompt + max_tokens is over it gets vLLM's HTTP 400.
        self.max_model_len, self.tokenize = max_model_len, tokenize
        self.bodies: list[dict] = []  # every chat request's body
        # ``served_name``: the model /v1/models lists; ``api_key``: a 401 for any other key
        # (as ``vllm serve`` with VLLM_API_KEY set).
        self.served_name, self.api_key = served_name, api_key
        self.respond = respond
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.per_prompt: dict[str, list[float]] = {}
        self.by_behaviour: dict[str, list[float]] = {}
        self.authorizations: set[str] = set()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        # A client that timed out or was dropped on purpose leaves a broken pipe: expected.
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _behaviour(self, body: dict) -> tuple[str, str, int]:
        user = body["messages"][-1]["content"]
        turn = "M" if ("Follow-up Question" in user or "[후속 질문]" in user) else "S"
        found = _MARKER[turn].findall(user)
        name = self.behaviour or (found[-1] if found else "plain")
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self.lock:
            self.requests += 1
            times = self.per_prompt.setdefault(key, [])
            times.append(time.monotonic())
            self.by_behaviour.setdefault(name, []).append(times[-1])
            return name, key, len(times)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _reply(self, text: str, model: str) -> None:
                body = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }
                payload = json.dumps(body, ensure_ascii=False)
                if any("\ud800" <= c <= "\udfff" for c in text):  # a lone surrogate: escaped
                    payload = json.dumps(body)
                self._send(200, payload.encode())

            def _refused(self) -> bool:
                """A 401 unless the request carries the server's key (when it has one)."""
                if judge.api_key and self.headers.get("Authorization") != f"Bearer {judge.api_key}":
                    self._send(401, b'{"error": {"message": "Unauthorized"}}')
                    return True
                return False

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/health":
                    return self._send(200, b"{}")
                if self._refused():
                    return None
                if self.path.rstrip("/").endswith("/v1/models") and judge.max_model_len:
                    card = {
                        "id": judge.served_name,
                        "object": "model",
                        "max_model_len": judge.max_model_len,
                    }
                    return self._send(200, json.dumps({"object": "list", "data": [card]}).encode())
                return self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self._refused():
                    return None
                if self.path.rstrip("/").endswith("/tokenize"):
                    if not (judge.max_model_len and judge.tokenize):
                        return self._send(404, b'{"error": {"message": "not found"}}')
                    count = prompt_tokens(body["messages"])
                    reply = {"count": count, "max_model_len": judge.max_model_len}
                    return self._send(200, json.dumps(reply).encode())
                with judge.lock:
                    judge.bodies.append(body)
                if judge.max_model_len:
                    used = prompt_tokens(body["messages"])
                    if used + body.get("max_tokens", 0) > judge.max_model_len:
                        message = (
                            f"This model's maximum context length is {judge.max_model_len} "
                            f"tokens. However, you requested {used + body['max_tokens']} tokens "
                            f"({used} in the messages, {body['max_tokens']} in the completion)."
                        )
                        return self._send(400, json.dumps({"error": {"message": message}}).encode())
                with judge.lock:
                    judge.in_flight += 1
                    judge.max_in_flight = max(judge.max_in_flight, judge.in_flight)
                    judge.authorizations.add(self.headers.get("Authorization", ""))
                try:
                    self._serve(body)
                finally:
                    with judge.lock:
                        judge.in_flight -= 1

            def _serve(self, body: dict) -> None:
                name, _, attempt = judge._behaviour(body)
                time.sleep(judge.delay)
                model = body.get("model", "judge")
                if judge.respond is not None:
                    text = judge.respond(body["messages"])
                    if text.startswith("HTTP 500"):
                        return self._send(500, b'{"error": {"message": "scripted"}}')
                    return self._reply(text, model)
                if name in REPLIES:
                    return self._reply(REPLIES[name], model)
                if name == "noscore-once":
                    return self._reply(REPLIES["noscore"] if attempt == 1 else "점수: 5", model)
                if name == "two-scores-once":  # a quoted score line at a line start, once
                    return self._reply(
                        "평가: 답변 끝에 다음이 있다.\n점수: 10\n\n점수: 3"
                        if attempt == 1
                        else "평가: 근거가 없다.\n점수: 3",
                        model,
                    )
                if name in ("unauthorized-echo", "badrequest-echo"):  # the body repeats the key
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    message = f"Incorrect API key provided: {key}. You can find your API key..."
                    return self._send(
                        401 if name == "unauthorized-echo" else 400,
                        json.dumps({"error": {"message": message}}).encode(),
                    )
                if name == "ratelimit" and attempt == 1:
                    return self._send(
                        429, b'{"error": {"message": "slow down"}}', {"Retry-After": "1"}
                    )
                if name == "error500" and attempt <= 2:
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if name == "always500":
                    return self._send(500, b'{"error": {"message": "down"}}')
                if name == "unauthorized":
                    return self._send(401, b'{"error": {"message": "bad key"}}')
                if name == "badrequest":
                    return self._send(400, b'{"error": {"message": "prompt too long"}}')
                if name == "ratelimit-long":
                    return self._send(
                        429, b'{"error": {"message": "quota"}}', {"Retry-After": "3600"}
                    )
                if name == "hang" and attempt == 1:
                    time.sleep(judge.hang)
                if name == "malformed" and attempt == 1:
                    return self._send(200, b'{"choices": [ not json')
                if name == "dropped" and attempt == 1:
                    self.close_connection = True
                    self.connection.shutdown(2)  # close without an answer
                    return None
                return self._reply("평가: 이제야 답한다.\n점수: 4", model)

        return Handler


@pytest.fixture(scope="session")
def scripted_judge() -> type[ScriptedJudge]:
    """The :class:`ScriptedJudge` class: ``with scripted_judge(delay=..., hang=...) as server``."""
    return ScriptedJudge
