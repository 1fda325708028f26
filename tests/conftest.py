"""Shared fixtures: a real local LLM server for the session, and quick runs of the paper sections
whose results several tests read (the section tests and the paper build)."""
import os
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LLM_PORT = int(os.environ.get("SAGE_BENCH_TEST_LLM_PORT", "8901"))
LLM_URL = os.environ.get("SAGE_BENCH_LLM_URL", f"http://127.0.0.1:{LLM_PORT}/v1").split(",")[0]
# the session's server: llama-server when scripts/install_llm.sh built it (parallel slots, so the methods' concurrent
# requests are served together), else llama-cpp-python's; the default CPU model, because the real-server tests of the
# LLM methods check answers (tests/test_timing.py wants 5 of 8 right), which the 135M test model does not give.
# SAGE_BENCH_TEST_LLM_MODEL names another model (e.g. smollm2-135m for a quick run of the plumbing).
LLM_MODEL = os.environ.get("SAGE_BENCH_TEST_LLM_MODEL") or None


def _start_session_server():
    from sage_bench.llm_service import start_llm_service
    info = start_llm_service(LLM_MODEL, port=LLM_PORT, timeout_s=900)
    print(f"conftest: LLM server {info['url']} ({info.get('server')}, {info.get('slots')} slot(s), model {info['model']})")
    return info


def server_up(url: str = LLM_URL) -> bool:
    "Whether an OpenAI-compatible server answers `GET /models` at `url` (a busy CPU server answers slowly)."
    try:
        import httpx
        return httpx.get(url.rstrip("/") + "/models", timeout=20).status_code == 200
    except Exception:  # noqa: BLE001 - any failure means no usable server
        return False


def real_server_mark():
    """The marks of the real-server tests (`llm`, and a skip when no server answers): call it at module level of a test
    file, which is imported at collection, after `pytest_configure` has started the server (with SAGE_BENCH_TEST_LLM=1).
    The fast tier (`scripts/test.sh --fast`) starts no server (SAGE_BENCH_TEST_LLM=0) and deselects the `llm` tests."""
    skip = pytest.mark.skipif(not server_up(), reason=f"no LLM server answers at {LLM_URL} (start one with `sage-bench llm start`)")
    return lambda test: pytest.mark.llm(skip(test))


# Tiers (`scripts/test.sh --fast` runs `-m "not llm and not sections and not slow"`): a test that uses one of these
# fixtures gets the marker without writing it; other tests carry it themselves (`@pytest.mark.sections`, ...).
FIXTURE_MARKS = {"llm_url": ("llm",), "real_server": ("llm",),
                 "section_5_2": ("llm", "sections"), "section_5_3": ("llm", "sections"), "section_5_4": ("sections",),
                 "section_5_5": ("sections",), "section_paper2": ("sections",), "built": ("slow",)}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in sorted({m for f in item.fixturenames for m in FIXTURE_MARKS.get(f, ())}):
            item.add_marker(name)


@pytest.fixture(scope="session")
def llm_url():
    """The URL of a real OpenAI-compatible server: one already answering on the port, else one this
    session starts with the default CPU model (and stops at the end). In CI a missing server fails."""
    from sage_bench.llm_service import check_llm_status, stop_llm_service
    st = check_llm_status(LLM_PORT, test=False)
    if st.get("up"):
        yield st.get("url") or f"http://127.0.0.1:{LLM_PORT}/v1"
        return
    try:
        info = _start_session_server()
    except Exception as e:  # noqa: BLE001 - reported as a skip locally, a failure in CI
        if IN_CI:
            raise
        pytest.skip(f"no local LLM server could be started: {e}")
    yield info["url"]
    if not info.get("already_running"):
        stop_llm_service(LLM_PORT)


_STARTED = {}


def pytest_configure(config):
    """With SAGE_BENCH_TEST_LLM=1 (set by scripts/test.sh) the real server is started before collection,
    so the real-server tests of the LLM methods (whose skip conditions are read at collection) run."""
    if os.environ.get("SAGE_BENCH_TEST_LLM") != "1":
        return
    from sage_bench.llm_service import check_llm_status
    if check_llm_status(LLM_PORT, test=False).get("up"):
        return
    try:
        _start_session_server()
    except Exception as e:  # noqa: BLE001
        if IN_CI:
            raise
        print(f"conftest: could not start the LLM server: {e}")
        return
    _STARTED["port"] = LLM_PORT


def pytest_unconfigure(config):
    if _STARTED:
        from sage_bench.llm_service import stop_llm_service
        stop_llm_service(_STARTED["port"])


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory):
    "One results root for the quick section runs of this test session."
    return tmp_path_factory.mktemp("sage_benchmark")


@pytest.fixture(scope="session")
def section_5_2(bench_root, llm_url):
    from sage_bench.report import run_section
    # the quick run's 12 samples per LLM method take the main job's 10 minutes with the quick model; the tests check the
    # plumbing with the session's (larger) model on fewer: SAGE_BENCH_TEST_LLM_SAMPLES, default 4
    n = int(os.environ.get("SAGE_BENCH_TEST_LLM_SAMPLES", "4"))
    return run_section("5.2", quick=True, llm_samples=n, llm_base_url=llm_url, output_dir=bench_root, log_output=False)


@pytest.fixture(scope="session")
def section_5_3(bench_root, section_5_2):
    from sage_bench.report import run_section
    return run_section("5.3", quick=True, skip_llm=True, output_dir=bench_root)


@pytest.fixture(scope="session")
def section_5_4(bench_root):
    from sage_bench.report import run_section
    return run_section("5.4", quick=True, skip_llm=True, output_dir=bench_root)


@pytest.fixture(autouse=True)
def _no_interrupt_left_noted():
    """A test that leaves an interrupt noted (core.note_interrupt, as the CLI's Ctrl-C handlers do) would stop the next
    in-process evaluation with KeyboardInterrupt, far from its cause; one that leaves another SIGINT handler installed
    changes what Ctrl-C does in every later test. Such a test fails here, and the state is put back."""
    import signal
    before = signal.getsignal(signal.SIGINT)
    yield
    from sage_bench.core import _INTERRUPTED
    left = []
    if _INTERRUPTED.is_set():
        _INTERRUPTED.clear(); left.append("an interrupt noted (sage_bench.core.note_interrupt; clear it with clear_interrupt())")
    if signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before); left.append(f"another SIGINT handler installed (it found {before!r})")
    if left: pytest.fail("the test left " + " and ".join(left))
