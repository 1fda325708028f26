"""Faults on the LLM side (issue 12): a reply that came back is final, a transport failure is not.

A misbehaving fake OpenAI-compatible server (tests/test_llm.py's FakeServer) plays every failure
the issue lists: down, HTTP 500, an HTML body, a closed connection, a reply slower than the
timeout, and prose where JSON was asked. The engine must record transport failures as not final,
show a method that got no answer as failed (never as a measured 0%), and on a rerun recompute
exactly the samples that got no answer.
"""
import os, socket, subprocess, sys

import pytest

from test_llm import FakeServer
from sage_bench.llm import LLMClient
from sage_bench.store import redact_url
from sage_bench.registry import get_method, get_dataset
from sage_bench.engine import evaluate, check_complete, IncompleteResults, results_table, no_answer_note
from sage_bench.store import RecordStore


def _free_port() -> int:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def _client(url, **kw):
    kw.setdefault("backoff_s", 0.01); kw.setdefault("max_retries", 1); kw.setdefault("timeout_s", 2.0)
    return LLMClient(url, model="fake-model", cache=False, **kw)


SCHEMA = {"type": "object", "properties": {"call_tool": {"type": "boolean"}}, "required": ["call_tool"]}


@pytest.fixture
def fake():
    s = FakeServer(); yield s; s.close()


@pytest.mark.parametrize("action", [("status", 500), ("garbage",), ("close",), ("sleep", 1.5, '{"call_tool": true}'), ("status", 404)])
def test_no_reply_is_a_transport_failure_with_its_real_latency(fake, action):
    fake.default = action
    r = _client(fake.url, timeout_s=0.5).chat("hello", SCHEMA)
    assert r.error and r.transport_error, r
    assert r.latency_s > 0.0, "a failed request records the time it took"


def test_server_down_is_a_transport_failure():
    r = _client(f"http://127.0.0.1:{_free_port()}/v1").chat("hello", SCHEMA)
    assert r.error and r.transport_error and r.latency_s > 0.0


def test_prose_is_a_final_reply_not_a_transport_failure(fake):
    fake.default = ("ok", "I think you should call a tool, yes.")
    r = _client(fake.url).chat("hello", SCHEMA)
    assert r.error is None and not r.transport_error and r.parse_status == "failed"


def test_a_refused_request_is_final(fake):
    fake.default = ("status", 400)
    r = _client(fake.url).chat("hello", SCHEMA)
    assert r.error and not r.transport_error and "refused" in r.error


def test_time_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("SAGE_BENCH_LLM_TIMEOUT", "7.5"); monkeypatch.setenv("SAGE_BENCH_LLM_ATTEMPTS", "2")
    c = LLMClient("http://127.0.0.1:1/v1")
    assert (c.timeout_s, c.max_retries) == (7.5, 1)
    monkeypatch.delenv("SAGE_BENCH_LLM_TIMEOUT"); monkeypatch.delenv("SAGE_BENCH_LLM_ATTEMPTS")
    c = LLMClient("http://127.0.0.1:1/v1")
    assert c.timeout_s == 120.0 and c.max_retries == 2, "defaults: a 2-minute request timeout, 3 attempts"
    monkeypatch.setenv("SAGE_BENCH_LLM_ATTEMPTS", "0")
    with pytest.raises(ValueError, match="SAGE_BENCH_LLM_ATTEMPTS"): LLMClient("http://127.0.0.1:1/v1")


def test_credentials_in_the_url_never_appear_in_messages(fake):
    secret_url = fake.url.replace("http://", "http://user:SECRETKEY@")
    fake.default = ("status", 500)
    c = _client(secret_url)
    r = c.chat("hello", SCHEMA)
    assert r.transport_error and "SECRETKEY" not in r.error and "SECRETKEY" not in repr(c)
    assert "SECRETKEY" not in str(dict(c.replica_requests))
    assert redact_url("see http://u:k@h:1/v1 and https://x@y/z") == "see http://h:1/v1 and https://y/z"


def test_status_line_says_what_the_client_waits_for(fake):
    import threading, time
    fake.default = ("sleep", 1.0, '{"call_tool": true}')
    c = _client(fake.url)
    seen = []
    t = threading.Thread(target=lambda: c.chat("hello", SCHEMA)); t.start()
    for _ in range(20):
        time.sleep(0.05); seen.append(c.status_line())
    t.join()
    assert any("in flight" in s for s in seen), seen
    assert c.status_line() == ""


def _method(mid, client):
    return get_method(mid, client=client)


def test_outage_then_recovery_recomputes_exactly_the_failed_samples(fake, tmp_path):
    ds = get_dataset("sage")
    fake.default = ("ok", '{"call_tool": true, "confidence": 0.9, "reason": "x"}')
    c = _client(fake.url)
    kw = dict(experiment="outage", output_dir=tmp_path, progress=False, n_boot=50)
    r1 = evaluate(_method("timing.llm_based", c), ds, "test", samples=3, **kw)
    assert r1.n_new == 3 and not r1.metrics["n_transport_failures"]
    fake.default = ("status", 500)                  # the server goes down: 3 resumed, 3 get no answer
    r2 = evaluate(_method("timing.llm_based", c), ds, "test", samples=6, **kw)
    assert (r2.n_new, r2.n_resumed, r2.metrics["n_transport_failures"]) == (3, 3, 3)
    assert no_answer_note(r2.metrics) == "incomplete: 3/6 no answer"
    assert set(results_table([r2])["accuracy"]) == {"incomplete: 3/6 no answer"}
    with pytest.raises(IncompleteResults, match="timing.llm_based"): check_complete([r2])
    failed = {r.sample_id for r in r2.records if r.transport_error}
    fake.default = ("ok", '{"call_tool": false, "confidence": 0.9, "reason": "x"}')
    n_posts = len(fake.posts)
    r3 = evaluate(_method("timing.llm_based", c), ds, "test", samples=6, **kw)
    assert (r3.n_new, r3.n_resumed, r3.config["n_retried"]) == (3, 3, 3)
    assert len(fake.posts) - n_posts == 3, "exactly the failed samples are asked again"
    assert {r.sample_id for r in r3.records if r.created_at > r2.records[0].created_at or r.sample_id in failed} >= failed
    assert not r3.metrics["n_transport_failures"] and all(r.final for r in r3.records)
    check_complete([r3])
    # the store keeps every attempt; the last record of a sample wins
    assert len(RecordStore(tmp_path, "outage").load(ds.name, "test", "timing.llm_based")) == 6


LLM_METHODS = ["timing.llm_based", "timing.hybrid", "planner.llm_based", "planner.react", "planner.tot",
               "selector.gorilla", "selector.dfsdt", "selector.llm_direct", "selector.llm_rerank"]


@pytest.mark.parametrize("mid", LLM_METHODS)
def test_every_llm_method_marks_a_down_server_as_no_answer(mid, tmp_path):
    """Every LLM method, against a server that is not there, records every sample it asked the LLM about as a
    transport failure (whatever it fell back to), so that a rerun retries it and no score is reported."""
    ds = get_dataset("sage")
    c = _client(f"http://127.0.0.1:{_free_port()}/v1", max_retries=0)
    r = evaluate(_method(mid, c), ds, "test", samples=4, experiment="down", output_dir=tmp_path, progress=False, n_boot=20, batch_size=4)
    asked = [x for x in r.records if x.error or x.fallback or x.transport_error or x.trace.get("llm_error")]
    if mid == "timing.hybrid":   # the rules answer the confident turns without the LLM; the others are failures
        assert {x.trace["path"] for x in asked} == {"llm"} and all(x.prediction is None for x in asked)
    assert asked and all(x.transport_error for x in asked), [(x.sample_id, x.error, x.transport_error) for x in r.records]
    assert r.metrics["n_transport_failures"] == len(asked)
    with pytest.raises(IncompleteResults): check_complete([r])


EXE = os.path.join(os.path.dirname(sys.executable), "sage-bench")


def _sb(*args, cwd, timeout=900):
    env = {**os.environ, "SAGE_BENCH_HOME": str(cwd), "SAGE_BENCH_CACHE": str(cwd / "cache")}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.mark.sections
def test_failing_server_section_run_exits_nonzero_and_names_the_method(fake, tmp_path):
    """`sage-bench run --section 5.2` against a server that lists its model but answers every completion with HTTP 500:
    exit 1, the method that got no answer is named, and `report` calls 5.2 partial; with the server back, a rerun
    completes it. Credentials in the URL appear in no file written."""
    fake.default = ("status", 500)
    url = fake.url.replace("http://", "http://user:SECRETKEY@")
    args = ["run", "--section", "5.2", "--quick", "--challenge", "timing", "--methods", "timing.llm_based",
            "--llm-base-url", url, "--llm-attempts", "1", "--output-dir", str(tmp_path / "out")]
    r = _sb(*args, cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "timing.llm_based" in r.stderr and "no answer" in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    rep = _sb("report", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    lines = rep.stdout.splitlines()
    i = next(i for i, l in enumerate(lines) if l.lstrip().startswith("5.2"))
    assert "partial" in lines[i] and "no answer: timing.llm_based" in lines[i + 1], rep.stdout
    summary = (tmp_path / "out" / "paper1" / "section_5_2_main" / "summary.txt").read_text()
    assert "failed:" in summary and "no answer" in summary, summary
    fake.default = ("ok", '{"call_tool": true, "confidence": 0.9, "reason": "x"}')
    r2 = _sb(*args, cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file(): assert b"SECRETKEY" not in f.read_bytes(), f


def test_a_lenient_load_is_recorded_in_the_result_file(tmp_path):
    "A run on a leniently loaded data set says so in its result file: lenient mode on, each skip with file, line and reason."
    import json
    from damage import cases, make, load
    case = next(c for c in cases() if c.dataset == "metatool" and c.level == "record")
    root, damaged, line = make(case, tmp_path / "copy")
    ds = load(case, root, lenient=True)
    r = evaluate("selector.keyword", ds, "test", samples=5, experiment="lenient", output_dir=tmp_path / "out", progress=False, n_boot=20)
    dl = json.loads(r.path.read_text())["provenance"]["config"]["data_load"]
    assert dl["lenient"] and dl["n_skipped"] >= 1, dl
    assert any(x["line"] == line and x["file"].endswith(case.rel.split("/")[-1]) for x in dl["skipped"]), (line, dl)
