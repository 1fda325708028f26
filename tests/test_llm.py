"""Tests of sage_bench.llm.

Retries, timeouts, replica spreading, the cache and every parse layer run against a tiny fake
OpenAI-compatible HTTP server that misbehaves on purpose. The end-to-end tests start a real
llama.cpp server with the small test model (port 8911) and stop it afterwards.
"""
import asyncio, json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sage_bench.llm import LLMClient


class FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 whose replies follow a script.

    Script entries (one per POST, the default after the script runs out): ("ok", text),
    ("status", code[, retry_after]), ("sleep", seconds, text), ("garbage",), ("close",)."""

    def __init__(self, owner="me", default=("ok", '{"answer": 1}')):
        self.owner, self.default, self.script, self.posts, self.gets, self.headers = owner, default, [], [], 0, []
        self.models_delay = 0.0
        self.lock = threading.Lock()
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass

            def _send(self, code, body, extra=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items(): self.send_header(k, v)
                self.end_headers(); self.wfile.write(data)

            def do_GET(self):
                with fake.lock: fake.gets += 1
                time.sleep(fake.models_delay)
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "owned_by": fake.owner}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.posts.append(body); fake.headers.append(dict(self.headers))
                    action = fake.script.pop(0) if fake.script else fake.default
                kind = action[0]
                if kind == "status":
                    extra = {"Retry-After": str(action[2])} if len(action) > 2 else {}
                    return self._send(action[1], {"error": f"fake {action[1]}"}, extra)
                if kind == "garbage": return self._send(200, b"<html>not json</html>")
                if kind == "close":
                    self.close_connection = True
                    self.wfile.flush(); self.connection.shutdown(2); return
                text = action[-1]
                if kind == "sleep": time.sleep(action[1])
                if text == "ECHO": text = body["messages"][-1]["content"]
                self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self): self.httpd.shutdown(); self.httpd.server_close()


@pytest.fixture
def fake():
    s = FakeServer(); yield s; s.close()


def client(urls, tmp_path=None, **kw):
    kw.setdefault("backoff_s", 0.01); kw.setdefault("max_retries", 3)
    if tmp_path is None: kw.setdefault("cache", False)
    else: kw.setdefault("cache_path", tmp_path / "llm.sqlite")
    return LLMClient(urls, model=kw.pop("model", "fake-model"), **kw)


# --- retries, timeouts, errors -------------------------------------------------------------

def test_retries_on_5xx_then_succeeds(fake):
    fake.script = [("status", 500), ("status", 503)]
    r = client(fake.url).chat("hi")
    assert r.ok and r.text == '{"answer": 1}' and r.attempts == 3 and len(fake.posts) == 3


def test_retries_on_429_with_retry_after(fake):
    fake.script = [("status", 429, 0)]
    c = client(fake.url)
    r = c.chat("hi")
    assert r.ok and r.attempts == 2 and c.stats["retries"] == 1


def test_gives_up_with_an_error_not_an_exception(fake):
    fake.default = ("status", 502)
    c = client(fake.url, max_retries=2)
    r = c.chat("hi", schema={"type": "object"})
    assert not r.ok and r.text is None and r.parsed is None and "no reply after 3 attempt(s)" in r.error and r.transport_error
    assert "502" in r.error and len(fake.posts) == 3 and c.stats["errors"] == 1


def test_client_error_is_not_retried(fake):
    fake.script = [("status", 400)]
    r = client(fake.url).chat("hi")
    assert not r.ok and "refused" in r.error and len(fake.posts) == 1 and not r.transport_error   # a reply: final


def test_timeout_then_retry_succeeds(fake):
    fake.script = [("sleep", 1.5, "late")]
    fake.default = ("ok", "fast")
    r = client(fake.url, timeout_s=0.4).chat("hi")
    assert r.ok and r.text == "fast" and r.attempts == 2


def test_timeout_exhausted_reports_timeout(fake):
    fake.default = ("sleep", 1.0, "late")
    r = client(fake.url, timeout_s=0.2, max_retries=1).chat("hi")
    assert not r.ok and "no reply within 0.2 s" in r.error and r.transport_error


def test_non_completion_body_and_dropped_connection_are_retried(fake):
    fake.script = [("garbage",), ("close",)]
    r = client(fake.url).chat("hi")
    assert r.ok and r.attempts == 3


def test_available_tells_busy_from_absent(fake):
    assert client(fake.url).available()
    fake.models_delay = 1.5                       # llama-cpp-python answers /models only between completions
    assert client(fake.url).available(timeout_s=0.3)
    assert not client("http://127.0.0.1:9/v1").available(timeout_s=1)


def test_server_down_is_an_error():
    r = client("http://127.0.0.1:9/v1", max_retries=1, connect_timeout_s=1).chat("hi")
    assert not r.ok and "no reply" in r.error and r.transport_error


def test_no_model_and_no_server_is_an_error_response():
    c = LLMClient("http://127.0.0.1:9/v1", cache=False)
    c.model = None
    r = c.chat("hi")
    assert not r.ok and "llm start" in r.error


# --- replicas ---------------------------------------------------------------------------------

def test_requests_are_spread_over_replicas_and_order_is_kept():
    a, b = FakeServer(default=("sleep", 0.05, "ECHO")), FakeServer(default=("sleep", 0.05, "ECHO"))
    try:
        c = client([a.url, b.url], concurrency=4)
        out = c.chat_many([[{"role": "user", "content": f"q{i}"}] for i in range(20)])
        assert [r.text for r in out] == [f"q{i}" for i in range(20)]
        assert len(a.posts) + len(b.posts) == 20 and len(a.posts) >= 5 and len(b.posts) >= 5
        assert c.replica_requests[a.url] == len(a.posts)
    finally: a.close(); b.close()


def test_a_dead_replica_is_skipped():
    good = FakeServer(default=("ok", "ECHO"))
    try:
        dead = "http://127.0.0.1:9/v1"
        c = client([dead, good.url], concurrency=2, connect_timeout_s=1)
        out = c.chat_many([f"q{i}" for i in range(10)])
        assert all(r.ok for r in out) and [r.text for r in out] == [f"q{i}" for i in range(10)]
        assert len(good.posts) == 10 and c.replica_requests[dead] <= 2      # skipped after it failed
    finally: good.close()


def test_concurrency_limit_is_respected():
    s = FakeServer(default=("sleep", 0.2, "x"))
    inflight, peak = [0], [0]
    orig = s.httpd.RequestHandlerClass.do_POST
    def counting(self):
        with s.lock: inflight[0] += 1; peak[0] = max(peak[0], inflight[0])
        try: orig(self)
        finally:
            with s.lock: inflight[0] -= 1
    s.httpd.RequestHandlerClass.do_POST = counting
    try:
        out = client(s.url, concurrency=3).chat_many([f"q{i}" for i in range(9)])
        assert all(r.ok for r in out) and peak[0] == 3
    finally: s.close()


# --- constrained output and parse layers ---------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["a", "b"]}}, "required": ["tool"]}

@pytest.mark.parametrize("text,status,parsed", [
    ('{"tool": "a"}', "strict", {"tool": "a"}),
    ('Here you go:\n```json\n{"tool": "b"}\n```', "fenced", {"tool": "b"}),
    ('I pick {"tool": "a"} because it fits.', "fenced", {"tool": "a"}),
    ("{'tool': 'a',}", "lenient", {"tool": "a"}),
    ('{"tool": "b"', "lenient", {"tool": "b"}),
    ("I would use tool a.", "failed", None),
])
def test_every_parse_layer_through_the_client(fake, text, status, parsed):
    fake.default = ("ok", text)
    r = client(fake.url).chat("which tool?", schema=SCHEMA)
    assert r.ok and r.parse_status == status and r.parsed == parsed and r.text == text
    assert r.output_fields()["parse_status"] == status


def test_no_json_asked_means_na(fake):
    r = client(fake.url).chat("hi")
    assert r.parse_status == "n/a" and r.parsed is None and "response_format" not in fake.posts[-1]


@pytest.mark.parametrize("owner,form", [("me", "json_object"), ("vllm", "json_schema"), ("openai", "json_schema")])
def test_schema_is_sent_in_the_backend_dialect(owner, form):
    s = FakeServer(owner=owner)
    try:
        c = client(s.url)
        r = c.chat("q", schema=SCHEMA)
        rf = s.posts[-1]["response_format"]
        assert r.ok and rf["type"] == form
        assert (rf["schema"] if form == "json_object" else rf["json_schema"]["schema"]) == SCHEMA
        assert s.posts[-1]["temperature"] == 0.1 and s.posts[-1]["seed"] == 42
    finally: s.close()


def test_model_is_discovered_when_not_given(fake):
    c = LLMClient(fake.url, cache=False); c.model = None
    r = c.chat("hi")
    assert r.ok and c.model == "fake-model" and fake.posts[-1]["model"] == "fake-model"


# --- tokens, latency and the cache ---------------------------------------------------------------

def test_tokens_and_latency_are_recorded(fake):
    fake.default = ("sleep", 0.05, "x")
    r = client(fake.url).chat("hi")
    assert (r.prompt_tokens, r.completion_tokens) == (11, 7) and r.latency_s > 0 and not r.cached
    f = r.output_fields()
    assert f["prompt_tokens"] == 11 and f["llm_calls"] == 1 and f["cached_calls"] == 0


def test_second_identical_run_makes_no_request(fake, tmp_path):
    fake.default = ("ok", "ECHO")
    reqs = [([{"role": "user", "content": f'{{"i": {i}}}'}], {"type": "object"}) for i in range(5)]
    first = client(fake.url, tmp_path).chat_many(reqs)
    assert len(fake.posts) == 5 and not any(r.cached for r in first)
    gets = fake.gets
    c2 = client(fake.url, tmp_path)                            # a new client, as in a re-run
    second = c2.chat_many(reqs)
    assert len(fake.posts) == 5 and fake.gets == gets and c2.stats["requests"] == 0 and c2.stats["cache_hits"] == 5
    assert all(r.cached for r in second)
    assert [(r.text, r.parsed, r.parse_status, r.prompt_tokens, r.completion_tokens) for r in second] == \
           [(r.text, r.parsed, r.parse_status, r.prompt_tokens, r.completion_tokens) for r in first]
    assert [r.latency_s for r in second] == pytest.approx([r.latency_s for r in first])
    # a different sampling parameter is a different request
    client(fake.url, tmp_path).chat(reqs[0][0], reqs[0][1], temperature=0.7)
    assert len(fake.posts) == 6
    # the flag turns the cache off
    client(fake.url, cache=False).chat_many(reqs)
    assert len(fake.posts) == 11


def test_errors_are_not_cached(fake, tmp_path):
    fake.script = [("status", 500)]
    assert not client(fake.url, tmp_path, max_retries=0).chat("hi").ok
    r = client(fake.url, tmp_path, max_retries=0).chat("hi")
    assert r.ok and not r.cached and len(fake.posts) == 2


def test_api_key_is_sent_but_never_stored(fake, tmp_path, monkeypatch):
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("SAGE_BENCH_LLM_API_KEY", secret)
    c = client(fake.url, tmp_path)
    r = c.chat("hi", schema={"type": "object"})
    assert fake.headers[-1].get("Authorization") == f"Bearer {secret}"
    assert secret not in json.dumps(r.to_dict()) and secret not in repr(c)
    c.cache.close()
    for f in tmp_path.iterdir(): assert secret.encode() not in f.read_bytes()


def test_sync_chat_works_inside_a_running_loop(fake):
    async def inside():                          # as in Jupyter, where a loop is already running
        return client(fake.url).chat("hi")
    assert asyncio.run(inside()).ok


def test_async_api(fake):
    async def go():
        c = client(fake.url)
        r1 = await c.achat("hi")
        rs = await c.achat_many([("a", None), {"messages": "b", "schema": {"type": "object"}, "max_tokens": 9}])
        await c.aclose()
        return r1, rs
    r1, rs = asyncio.run(go())
    assert r1.ok and len(rs) == 2 and fake.posts[-1]["max_tokens"] == 9 and rs[1].parse_status == "strict"


def test_bad_messages_raise_clearly():
    with pytest.raises(ValueError, match="role"):
        client("http://127.0.0.1:9/v1").chat([{"content": "no role"}])


# --- end to end against a real llama.cpp server --------------------------------------------------

@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    from sage_bench.llm_service import TEST_MODEL, start_llm_service, stop_llm_service
    root = tmp_path_factory.mktemp("llm_state")
    info = start_llm_service(TEST_MODEL, port=8911, root=root, timeout_s=300)
    yield info
    assert stop_llm_service(8911, root=root)["stopped"]


def test_e2e_plain_completion(real_server, tmp_path):
    c = LLMClient(real_server["url"], model=None, cache_path=tmp_path / "c.sqlite", max_tokens=16)
    r = c.chat([{"role": "user", "content": "Say hello."}])
    assert r.ok, r.error
    assert r.text and r.text.strip() and r.prompt_tokens > 0 and 0 < r.completion_tokens <= 16
    assert r.model == "smollm2-135m" and c.backend == "llama.cpp"
    assert r.parse_status == "n/a" and not r.cached
    again = LLMClient(real_server["url"], model="smollm2-135m", cache_path=tmp_path / "c.sqlite", max_tokens=16)
    r2 = again.chat([{"role": "user", "content": "Say hello."}])
    assert r2.cached and r2.text == r.text and again.stats["requests"] == 0


def test_e2e_schema_constrained_completion(real_server, tmp_path):
    schema = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["send_email", "get_weather", "search_web"]},
                                               "confidence": {"type": "number"}},
              "required": ["tool", "confidence"]}
    c = LLMClient(real_server["url"], cache=False, max_tokens=48)
    msgs = [{"role": "system", "content": "Answer with JSON only."},
            {"role": "user", "content": "Which tool sends a message to bob@example.org?"}]
    rs = c.chat_many([(msgs, schema)] * 2 + [([{"role": "user", "content": "Pick any tool."}], schema)])
    for r in rs:
        assert r.ok, r.error
        assert r.parse_status == "strict", r.text            # the grammar makes the reply valid JSON
        assert r.parsed["tool"] in schema["properties"]["tool"]["enum"]
        assert isinstance(r.parsed["confidence"], (int, float))
    assert c.backend == "llama.cpp"
