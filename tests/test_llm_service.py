"""Tests of sage_bench.llm_service against real llama.cpp servers (the small test model, port 8912): llama-server (built
by scripts/install_llm.sh) and llama-cpp-python's server (the fallback), and of scripts/install_llm.sh. Every server
started here is stopped here. No test asserts a time: overlap is read from llama-server's own counters."""
import json, os, re, socket, subprocess, sys, time
from pathlib import Path

import pytest

from sage_bench.llm import LLMClient
from sage_bench.llm_service import (LLAMA_SERVER_TAG, MODELS, TEST_MODEL, LLMServiceError, check_llm_status,
                                    is_our_process, llama_cpp_dir, llama_server_binary, llama_server_metrics, llm_cli,
                                    models_dir, start_llm_service, stop_llm_service, verify_model)

ROOT = Path(__file__).resolve().parents[1]
PORT = 8912
BUILT = llama_server_binary() is not None
needs_llama_server = pytest.mark.skipif(not BUILT and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                                        reason="llama-server is not built: bash scripts/install_llm.sh llama-server")


def _pid_alive(pid):
    try: state = Path(f"/proc/{pid}/status").read_text()
    except OSError: return False
    return "State:\tZ" not in state


@pytest.mark.llm
def test_start_status_stop_cycle(tmp_path, capsys):
    info = start_llm_service(TEST_MODEL, port=PORT, root=tmp_path, timeout_s=300)
    try:
        assert set(info) >= {"url", "model", "port", "pid", "backend"}
        assert info["url"] == f"http://127.0.0.1:{PORT}/v1" and info["model"] == TEST_MODEL
        assert info["backend"] == "llama.cpp" and info["port"] == PORT and _pid_alive(info["pid"])
        state = json.loads((tmp_path / f"{PORT}.json").read_text())
        assert state["pid"] == info["pid"] and is_our_process(state) and Path(state["log"]).exists()
        assert state["cmd"][state["cmd"].index("--host") + 1] == "127.0.0.1"
        if BUILT:       # llama-server with its slots, continuous batching, prompt cache and counters
            assert info["server"] == state["server"] == "llama-server" and info["slots"] == 4
            assert Path(state["cmd"][0]) == llama_server_binary()
            for flag in ("--parallel", "--cont-batching", "--ctx-size", "--cache-ram", "--threads", "--metrics"):
                assert flag in state["cmd"], flag
        else:
            assert info["server"] == "llama-cpp-python" and "--n_ctx" in state["cmd"] and info["slots"] == 1

        st = check_llm_status(PORT, root=tmp_path)
        assert st["up"] and st["model"] == TEST_MODEL and st["pid"] == info["pid"] and st["managed"]
        assert st["backend"] == "llama.cpp" and st["latency_s"] > 0
        assert st["server"] == info["server"] and st["slots"] == info["slots"]

        again = start_llm_service(TEST_MODEL, port=PORT, root=tmp_path)       # ours already runs there
        assert again["already_running"] and again["pid"] == info["pid"]

        assert llm_cli("status", port=PORT, root=tmp_path) == 0
        assert "up: http://127.0.0.1:8912/v1" in capsys.readouterr().out

        # the port is now taken: a second server there must fail clearly (from another state root)
        with pytest.raises(LLMServiceError, match="already in use"):
            start_llm_service(TEST_MODEL, port=PORT, root=tmp_path / "other")
    finally:
        r = stop_llm_service(PORT, root=tmp_path)
    assert r["stopped"] and r["pid"] == info["pid"]
    assert not _pid_alive(info["pid"]) and not (tmp_path / f"{PORT}.json").exists()
    assert not check_llm_status(PORT, root=tmp_path)["up"]
    assert llm_cli("status", port=PORT, root=tmp_path) == 1


@pytest.mark.llm
def test_cli_start_and_stop(tmp_path, capsys):
    assert llm_cli("start", model=TEST_MODEL, port=PORT, root=tmp_path) == 0
    out = capsys.readouterr().out
    assert "LLM server up" in out and TEST_MODEL in out
    assert llm_cli("stop", port=PORT, root=tmp_path) == 0
    assert "stopped" in capsys.readouterr().out
    assert llm_cli("stop", port=PORT, root=tmp_path) == 0                      # nothing left: fine
    assert "no server started by sage-bench" in capsys.readouterr().out


def test_port_taken_by_another_program(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen(); port = s.getsockname()[1]
        with pytest.raises(LLMServiceError, match=f"port {port} .* already in use"):
            start_llm_service(TEST_MODEL, port=port, root=tmp_path)
    assert not (tmp_path / f"{port}.json").exists()


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGE_BENCH_MODELS", str(tmp_path / "empty"))
    with pytest.raises(LLMServiceError, match="not installed.*install_llm.sh"):
        start_llm_service("qwen2.5-coder-0.5b", port=PORT, root=tmp_path)
    with pytest.raises(LLMServiceError, match="does not exist"):
        start_llm_service(str(tmp_path / "nope.gguf"), port=PORT, root=tmp_path)
    with pytest.raises(LLMServiceError, match="GPU"):
        start_llm_service("Qwen/Qwen2.5-7B-Instruct", port=PORT, root=tmp_path, backend="llama.cpp")


def test_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGE_BENCH_MODELS", str(tmp_path))
    (tmp_path / MODELS[TEST_MODEL]["file"]).write_bytes(b"GGUF but not the pinned file")
    with pytest.raises(LLMServiceError, match="does not match the pinned sha256"):
        verify_model(TEST_MODEL)


@pytest.mark.llm
def test_a_process_that_dies_while_starting_is_reported(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file" * 100)
    with pytest.raises(LLMServiceError, match="exited with code") as e:
        start_llm_service(str(bad), port=PORT, root=tmp_path, timeout_s=120)
    assert "end of" in str(e.value) and not (tmp_path / f"{PORT}.json").exists()


def test_stop_never_kills_a_process_that_is_not_ours(tmp_path):
    other = subprocess.Popen(["sleep", "300"])
    try:
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / "8999.json").write_text(json.dumps({"pid": other.pid, "port": 8999, "backend": "llama.cpp",
                                                        "cmd": [sys.executable, "-m", "llama_cpp.server", "--port", "8999"]}))
        r = stop_llm_service(8999, root=tmp_path)
        assert not r["stopped"] and "not touched" in r["message"]
        time.sleep(0.2)
        assert other.poll() is None                                  # still running
        assert not (tmp_path / "8999.json").exists()                 # the stale record is gone
    finally:
        other.kill(); other.wait()


def test_install_script_matches_the_python_table():
    text = (ROOT / "scripts" / "install_llm.sh").read_text()
    rows = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) == 7 and re.fullmatch(r"[0-9a-f]{64}", parts[2]): rows[parts[0]] = parts
    assert set(rows) == set(MODELS)
    for name, m in MODELS.items():
        assert rows[name][1] == m["file"] and rows[name][2] == m["sha256"] and int(rows[name][3]) == m["bytes"]


@pytest.mark.llm
def test_install_script_is_idempotent():
    # the test model is installed (scripts/setup.sh runs install_llm.sh): a second run only checks it
    assert (models_dir() / MODELS[TEST_MODEL]["file"]).exists(), "run `bash scripts/install_llm.sh` first"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install_llm.sh"), TEST_MODEL], capture_output=True, text=True,
                       env={**os.environ, "SKIP_PIP": "1", "PYTHON": sys.executable}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "sha256 OK, skipping" in r.stdout
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install_llm.sh"), "no-such-model"], capture_output=True,
                       text=True, env={**os.environ, "SKIP_PIP": "1", "PYTHON": sys.executable}, timeout=60)
    assert r.returncode != 0 and "unknown model" in r.stderr


def test_status_of_a_busy_server(tmp_path):
    """A server that accepts /models but answers only after its queued work is up and busy, not down."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            time.sleep(2)
            self.send_response(200); self.end_headers(); self.wfile.write(b'{"data": []}')
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow); httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        st = check_llm_status(httpd.server_address[1], models_timeout_s=0.3, root=tmp_path)
        assert st["up"] and st["busy"] and "busy" in st["error"] and st["latency_s"] is None
    finally:
        httpd.shutdown(); httpd.server_close()


@pytest.mark.llm
def test_remote_host_needs_allow_remote_and_warns(tmp_path, capsys):
    """0.0.0.0 binds every interface: refused without allow_remote (nothing started); with it, a warning and the
    addresses other machines use are printed, not 127.0.0.1."""
    assert llm_cli("start", model=TEST_MODEL, host="0.0.0.0", port=PORT, root=tmp_path) == 1
    assert "allow-remote" in capsys.readouterr().err and not (tmp_path / f"{PORT}.json").exists()
    try:
        assert llm_cli("start", model=TEST_MODEL, host="0.0.0.0", port=PORT, root=tmp_path, allow_remote=True) == 0
        cap = capsys.readouterr()
        assert "warning" in cap.err and "every network interface" in cap.err
        up = next(l for l in cap.out.splitlines() if l.startswith("LLM server up"))
        assert re.search(rf"up: http://[^ ]+:{PORT}/v1", up) and not up.startswith("LLM server up: http://127.0.0.1")
        state = json.loads((tmp_path / f"{PORT}.json").read_text())
        assert state["cmd"][state["cmd"].index("--host") + 1] == "0.0.0.0"
        assert check_llm_status(PORT, root=tmp_path, test=False)["up"]
    finally:
        stop_llm_service(PORT, root=tmp_path)


def _busy_per_decode(before: dict, after: dict) -> float:
    "Mean busy slots per decode step between two /metrics snapshots (llama-server's own count)."
    steps = after["n_decode_total"] - before.get("n_decode_total", 0)
    busy = after["n_busy_slots_per_decode"] * after["n_decode_total"] - \
        before.get("n_busy_slots_per_decode", 0) * before.get("n_decode_total", 0)
    return busy / steps


@pytest.mark.llm
@needs_llama_server
def test_llama_server_decodes_concurrent_requests_together(tmp_path):
    """Requests that LLMClient keeps in flight together are decoded together: llama-server counts the busy slots of
    every decode step, and two concurrent requests give more than one per step (one at a time gives exactly one).
    A repeated prompt is taken from the server's prompt cache."""
    info = start_llm_service(TEST_MODEL, port=PORT, root=tmp_path, timeout_s=300, parallel=2, n_ctx=1024)
    try:
        assert info["server"] == "llama-server" and info["slots"] == 2
        assert check_llm_status(PORT, root=tmp_path, test=False)["slots"] == 2
        reqs = [[{"role": "user", "content": f"Count from 1 to 60, one number per line. ({i})"}] for i in range(2)]
        for concurrency in (1, 2):
            c = LLMClient(info["url"], cache=False, concurrency=concurrency, max_tokens=40, max_retries=0)
            before = llama_server_metrics(info["url"])
            out = c.chat_many(reqs, ignore_eos=True)          # ignore_eos: every reply is 40 tokens long
            assert all(r.ok for r in out) and [r.completion_tokens for r in out] == [40, 40], [r.error for r in out]
            busy = _busy_per_decode(before, llama_server_metrics(info["url"]))
            if concurrency == 1: assert busy == pytest.approx(1.0, abs=0.01)     # (the counter is printed rounded)
            else: assert busy > 1.2, busy                     # ~2: both slots decoded in the same steps
        before = llama_server_metrics(info["url"])
        c.chat_many(reqs[:1], max_tokens=4)                   # the same prompt again: its tokens come from the cache
        after = llama_server_metrics(info["url"])
        assert after["prompt_tokens_cached_total"] - before["prompt_tokens_cached_total"] >= 10
        assert after["prompt_tokens_total"] - before["prompt_tokens_total"] <= 2
    finally:
        stop_llm_service(PORT, root=tmp_path)


@pytest.mark.llm
def test_falls_back_to_llama_cpp_python_when_llama_server_is_not_built(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGE_BENCH_LLAMA_CPP", str(tmp_path / "not-built"))
    for v in ("SAGE_BENCH_LLAMA_SERVER", "SAGE_BENCH_LLM_SERVER"): monkeypatch.delenv(v, raising=False)
    with pytest.raises(LLMServiceError, match="install_llm.sh llama-server"):
        start_llm_service(TEST_MODEL, port=PORT, root=tmp_path, server="llama-server")
    info = start_llm_service(TEST_MODEL, port=PORT, root=tmp_path, timeout_s=300)
    try:
        assert "llama-server is not built" in capsys.readouterr().err
        assert info["server"] == "llama-cpp-python" and info["slots"] == 1 and info["backend"] == "llama.cpp"
        st = check_llm_status(PORT, root=tmp_path)
        assert st["up"] and st["server"] == "llama-cpp-python" and st["latency_s"] > 0
    finally:
        assert stop_llm_service(PORT, root=tmp_path)["stopped"]


@pytest.mark.llm
@needs_llama_server
def test_llama_server_build_step_is_idempotent():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install_llm.sh"), "llama-server"], capture_output=True, text=True,
                       env={**os.environ, "SKIP_PIP": "1", "PYTHON": sys.executable}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"reports {LLAMA_SERVER_TAG}, skipping" in r.stdout
    src = llama_cpp_dir() / "src"                  # the sources stay for the model converters
    assert (src / "convert_hf_to_gguf.py").is_file() and (src / "convert_lora_to_gguf.py").is_file()
    info = dict(l.split("=", 1) for l in (llama_cpp_dir() / "BUILD_INFO").read_text().splitlines() if "=" in l)
    assert info["version"] == LLAMA_SERVER_TAG and int(info["build_seconds"]) > 0


def test_a_refused_llama_cpp_sdist_leaves_nothing_behind(tmp_path):
    """The build step checks the sdist's pinned sha256 before building; a file that does not match stops it with a
    reason, and neither a half-made install nor a temporary folder stays behind."""
    fake = tmp_path / "python"        # stands in for `python -m pip download ... -d DIR`: delivers a tarball of junk
    fake.write_text('#!/bin/sh\nd=""; while [ $# -gt 0 ]; do [ "$1" = "-d" ] && d="$2"; shift; done\n'
                    'mkdir -p "$d" && echo junk | gzip > "$d/llama_cpp_python-0.3.36.tar.gz"\n')
    fake.chmod(0o755)
    dest = tmp_path / "llama.cpp" / "0.3.36"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install_llm.sh"), "llama-server"], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": str(fake), "SKIP_PIP": "1", "SAGE_BENCH_LLAMA_CPP": str(dest)}, timeout=120)
    assert r.returncode != 0 and "does not match the pinned sha256" in r.stderr, r.stderr
    assert not dest.exists() and not list((tmp_path / "llama.cpp").glob(".build.*"))
