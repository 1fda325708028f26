"""The sage-bench command line, run as a user runs it (a subprocess of the installed entry point)."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

EXE = str(Path(sys.executable).parent / "sage-bench") if (Path(sys.executable).parent / "sage-bench").exists() else shutil.which("sage-bench")

SPEC_METHODS = ["timing.rule_based", "timing.embedding", "timing.llm_based", "timing.hybrid",
                "planner.simple", "planner.hierarchical", "planner.llm_based", "planner.react", "planner.tot",
                "selector.keyword", "selector.embedding", "selector.hybrid", "selector.gorilla", "selector.dfsdt", "selector.llm_direct"]


def sb(*args, env=None, timeout=900, cwd=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)


def test_help_lists_every_subcommand():
    out = sb("--help").stdout
    for c in ("run", "eval", "train", "llm", "list", "figures", "tables", "report", "interactive", "paper"):
        assert c in out


def test_list_methods_has_all_fifteen():
    r = sb("list", "methods")
    assert r.returncode == 0
    for m in SPEC_METHODS:
        assert m in r.stdout, m


def _sizes(line):
    "(version, tools, {column: (test, all)}) of a `list datasets` line; a column of '-' is (0, 0)."
    f = line.split()
    cells = [tuple(int(x) for x in c.split("/")) if c != "-" else (0, 0) for c in f[3:6]]
    return f[1], int(f[2]), dict(zip(("timing", "planning", "selection"), cells))


@pytest.mark.slow
def test_list_datasets_shows_versions_and_sizes(tmp_path):
    env = {"SAGE_BENCH_CACHE": str(tmp_path / "cache")}
    r = sb("list", "datasets", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "version" in lines[0] and "test/all" in lines[0]
    from sage_bench.registry import get_dataset
    v1, v2 = get_dataset("sage_v1"), get_dataset("sage")
    version, tools, c = _sizes(next(l for l in lines if l.startswith("sage_v1 ")))
    assert version == (getattr(v1, "version", None) or "-") and tools == len(v1.tools)
    assert c == {"timing": (45, 300), "planning": (45, 300), "selection": (90, 600)}
    version, tools, c = _sizes(next(l for l in lines if l.startswith("sage ")))
    assert version == v2.version and tools == len(v2.tools)
    assert c["timing"] == (len(v2.select("timing", "test")), len(v2.select("timing")))
    assert c["selection"] == (len(v2.select("tool_selection", "test")), len(v2.select("tool_selection")))
    for name in ("acebench", "apibank", "toolalpaca", "bfcl", "toolbench", "taskbench", "metatool"):
        assert any(l.startswith(name) for l in lines), name
    # the sizes are kept: a second run prints the same from the cache, and reads what the cache says
    kept = tmp_path / "cache" / "list" / "dataset_sizes.json"
    assert sb("list", "datasets", env=env).stdout == r.stdout
    d = json.loads(kept.read_text())
    d["sizes"]["sage"]["tools"] = 7
    kept.write_text(json.dumps(d))
    assert _sizes(next(l for l in sb("list", "datasets", env=env).stdout.splitlines() if l.startswith("sage ")))[1] == 7
    kept.write_text("{not json")              # a damaged cache is recomputed
    assert sb("list", "datasets", env=env).stdout == r.stdout


def test_unknown_name_suggests_and_exits_2():
    r = sb("eval", "--dataset", "sage", "--methods", "selector.keywrd")
    assert r.returncode == 2 and "selector.keyword" in r.stderr
    r = sb("eval", "--dataset", "bfcll", "--methods", "selector.keyword")
    assert r.returncode == 2 and "bfcl" in r.stderr


@pytest.mark.slow
def test_eval_prints_a_table_with_confidence_intervals(tmp_path):
    r = sb("eval", "--dataset", "sage", "--methods", "selector.keyword,timing.rule_based", "--samples", "20",
           "--output-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "hit@5" in r.stdout and "[" in r.stdout
    rows = json.loads((tmp_path / "eval_summary.json").read_text())
    assert {x["method"] for x in rows} == {"selector.keyword", "timing.rule_based"} and all(x["n"] == 20 for x in rows)


@pytest.mark.slow
def test_train_dry_run_trains_nothing(tmp_path):
    r = sb("train", "--methods", "A_baseline,B1_random", "--quick", "--dry-run", "--output-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "A_baseline" in r.stdout and not any(tmp_path.rglob("*.json"))


def test_report_lists_every_experiment(tmp_path):
    r = sb("report", "--output-dir", str(tmp_path))
    assert r.returncode == 0
    for e in ("5.2", "5.3", "5.4", "5.5", "paper2"):
        assert e in r.stdout


@pytest.mark.sections
def test_run_without_output_dir_writes_under_the_home(tmp_path):
    """The section notebook's kernel runs in nbs/, yet `sage-bench run` without --output-dir must put the results
    under the caller's .sage/benchmark, beside the executed notebook, where `report` finds them."""
    env = {k: v for k, v in os.environ.items() if k != "SAGE_BENCH_HOME"}
    r = subprocess.run([EXE, "run", "--section", "5.2", "--quick", "--skip-llm", "--challenge", "timing", "--methods", "timing.rule_based"],
                       capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    d = tmp_path / ".sage/benchmark/paper1/section_5_2_main"
    res = json.loads((d / "timing_results.json").read_text())
    assert [x["method"] for x in res["results"]] == ["timing.rule_based"] and (d / "executed_05_2_main_eval.ipynb").exists()
    assert (d / "records/sage/test/timing.rule_based.jsonl").exists()
    rep = subprocess.run([EXE, "report"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    line = next(l for l in rep.stdout.splitlines() if "5.2" in l)
    assert "missing" not in line, rep.stdout


# --- faults and bad input (issue 12): one line, the right exit code, never a traceback -------------------------------

def _one_line_error(r, code=2):
    assert r.returncode == code, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


@pytest.mark.parametrize("args,why", [
    (["eval", "--methods", "selector.keyword", "--samples", "-5"], "--samples: must be at least 1, got -5"),
    (["eval", "--methods", "selector.keyword", "--samples", "0"], "--samples: must be at least 1, got 0"),
    (["eval", "--methods", "selector.keyword", "--split", "tset"], "invalid choice: 'tset'"),
    (["eval", "--methods", "selector.keyword", "--seed", "-1"], "--seed: must be from 0"),
    (["eval", "--methods", "selector.keyword", "--data-dir", "/no/such/folder"], "no such folder: /no/such/folder"),
    (["eval", "--methods", "selector.keyword", "--llm-timeout", "0"], "--llm-timeout: must be a number above 0"),
    (["eval", "--methods", "selector.keyword", "--llm-attempts", "0"], "--llm-attempts: must be at least 1"),
    (["run", "--section", "5.2", "--methods", "timing.rule_basd"], "Did you mean 'timing.rule_based'"),
    (["run", "--section", "5.2", "--samples", "0"], "--samples: must be at least 1"),
    (["run", "--llm-base-url", "user:KEY@localhost:8000"], "not an http(s) URL"),
    (["train", "--methods", "A_basline", "--dry-run"], "Did you mean 'A_baseline'"),
    (["llm", "start", "--port", "99999"], "--port: must be from 1 to 65535, got 99999"),
    (["llm", "status", "--port", "0"], "--port: must be from 1 to 65535"),
    (["llm", "start", "--host", "0.0.0.0"], "--allow-remote"),
    (["llm", "start", "--timeout", "-1"], "--timeout: must be a number above 0"),
    (["report", "--output-dir", "/no/such/folder"], "no such folder"),
    (["tables", "--section", "5.22"], "Did you mean"),
])
def test_usage_errors_exit_2_with_one_line(args, why):
    err = _one_line_error(sb(*args, timeout=300))
    assert why in err and "KEY" not in err, err


def test_run_method_typo_is_caught_before_papermill(tmp_path):
    r = sb("run", "--section", "5.2", "--quick", "--skip-llm", "--methods", "timing.rule_basd", "--output-dir", str(tmp_path))
    err = _one_line_error(r)
    assert "PapermillExecutionError" not in err and "== section" not in r.stdout and not any(tmp_path.iterdir())


def test_run_accepts_a_method_registered_on_request(tmp_path, monkeypatch):
    """trained.llm runs only when named (`register_method(on_request=True)`), so `run --methods trained.llm` must pass the
    name check made before papermill starts. No section runs here (run_section is replaced) and nothing is trained."""
    from sage_bench import cli, runner
    from sage_bench.registry import method_ids
    assert "trained.llm" not in method_ids() and "trained.llm" in method_ids(on_request=True)
    assert cli.check_methods(["trained.llm", "selector.keyword"]) == ["trained.llm", "selector.keyword"]
    seen = {}
    monkeypatch.setattr(runner, "run_section", lambda s, **kw: seen.update(section=s, methods=kw["methods"]) or tmp_path / "executed.ipynb")
    rc = cli.main(["run", "--section", "5.5", "--methods", "trained.llm", "--output-dir", str(tmp_path)])
    assert rc == 0 and seen == {"section": "5.5", "methods": "trained.llm"}


def test_unwritable_output_dir(tmp_path):
    (tmp_path / "a-file").write_text("")
    err = _one_line_error(sb("eval", "--methods", "selector.keyword", "--samples", "3", "--output-dir", str(tmp_path / "a-file" / "out")))
    assert "--output-dir" in err and "cannot write" in err
    if os.geteuid() != 0:                   # root writes anywhere: the read-only folder case needs another user
        ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o500)
        try: assert "cannot write" in _one_line_error(sb("eval", "--methods", "selector.keyword", "--samples", "3", "--output-dir", str(ro)))
        finally: ro.chmod(0o700)


@pytest.mark.slow
def test_data_dir_keeps_the_built_in_set(tmp_path):
    (tmp_path / "nothing-here").mkdir()
    r = sb("eval", "--dataset", "sage", "--methods", "selector.keyword", "--samples", "5", "--data-dir", str(tmp_path / "nothing-here"),
           "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "selector.keyword" in r.stdout and "skip data set sage" not in r.stdout
    r = sb("list", "datasets", "--data-dir", str(tmp_path / "nothing-here"))
    line = next(l for l in r.stdout.splitlines() if l.startswith("sage_v1 "))
    assert line.split()[3:6] == ["45/300", "45/300", "90/600"], line
    assert next(l for l in r.stdout.splitlines() if l.startswith("bfcl ")).split()[1:3] == ["-", "-"]


def test_llm_time_limit_flags_are_documented():
    for cmd in ("run", "eval", "train"):
        out = sb(cmd, "--help").stdout
        assert "--llm-timeout" in out and "SAGE_BENCH_LLM_TIMEOUT" in out and "--llm-attempts" in out and "SAGE_BENCH_LLM_ATTEMPTS" in out, cmd
    assert "--allow-remote" in sb("llm", "--help").stdout
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "--llm-timeout" in readme and "--llm-attempts" in readme and "--allow-remote" in readme


def test_main_restores_the_llm_environment(tmp_path, monkeypatch):
    "--llm-timeout and --llm-attempts reach the command's LLM clients through the environment, and only for that command."
    from sage_bench import cli
    monkeypatch.delenv("SAGE_BENCH_LLM_TIMEOUT", raising=False)
    monkeypatch.setenv("SAGE_BENCH_LLM_ATTEMPTS", "4")
    seen = {}
    monkeypatch.setitem(cli.__dict__, "cmd_train", lambda a: seen.update(
        t=os.environ.get("SAGE_BENCH_LLM_TIMEOUT"), n=os.environ.get("SAGE_BENCH_LLM_ATTEMPTS")) or 0)
    rc = cli.main(["train", "--methods", "A_baseline", "--quick", "--dry-run", "--llm-timeout", "7", "--llm-attempts", "2",
                   "--output-dir", str(tmp_path)])
    assert rc == 0 and seen == {"t": "7.0", "n": "2"}
    assert "SAGE_BENCH_LLM_TIMEOUT" not in os.environ and os.environ["SAGE_BENCH_LLM_ATTEMPTS"] == "4"


@pytest.mark.slow
def test_record_error_is_one_message_and_a_torn_tail_is_repaired(tmp_path):
    args = ["eval", "--methods", "selector.keyword", "--output-dir", str(tmp_path)]
    assert sb(*args, "--samples", "10").returncode == 0
    rec = tmp_path / "records/sage/test/selector.keyword.jsonl"
    lines = rec.read_text().splitlines(keepends=True)
    rec.write_text("".join(lines[:-1]) + lines[-1][:40])           # a disk-full stop: the last record is cut
    r = sb(*args, "--samples", "20")                                 # appends after cutting the torn record off
    assert r.returncode == 0 and str(rec) in r.stderr and "byte" in r.stderr, r.stderr[-2000:]
    r = sb(*args, "--samples", "20")
    assert r.returncode == 0 and "RecordError" not in r.stderr and "invalid JSON" not in r.stderr, r.stderr[-2000:]
    rows = json.loads((tmp_path / "eval_summary.json").read_text())
    assert rows[0]["n"] == 20 and len(rec.read_text().splitlines()) == 20
    lines = rec.read_text().splitlines(keepends=True)
    rec.write_text("".join(lines[:5]) + "{not json\n" + "".join(lines[5:]))    # damage in the middle: not repairable
    err = _one_line_error(sb(*args, "--samples", "20"), code=1)
    assert str(rec) in err and "invalid JSON" in err


def _ctrl_c_as_in_a_terminal():
    """In the child before exec: SIGINT as a terminal leaves it (default). A test runner started in the background of a
    shell without job control ignores SIGINT, every child inherits that, and a Python child then never raises
    KeyboardInterrupt (the cause of this test's failures in such runs)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_keeps_the_records_and_exits_130(tmp_path):
    """SIGINT (what Ctrl-C sends) while `eval` runs: exit 130, how many records were kept, no traceback; the rerun
    resumes from them."""
    import signal, time
    args = ["eval", "--methods", "selector.keyword,planner.simple", "--split", "all", "--output-dir", str(tmp_path)]
    p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    rec = tmp_path / "records/sage/all/selector.keyword.jsonl"
    t0 = time.time()
    while p.poll() is None and not (rec.exists() and rec.stat().st_size) and time.time() - t0 < 300: time.sleep(0.05)
    assert p.poll() is None, "eval ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, (p.returncode, err[-3000:])
    kept = sum(len(f.read_text().splitlines()) for f in (tmp_path / "records").rglob("*.jsonl"))
    assert err.strip().splitlines()[-1] == f"interrupted: {kept} records kept, rerun to resume" and kept > 0, err[-1000:]
    r = sb("eval", "--methods", "selector.keyword", "--split", "all", "--output-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    ids = [json.loads(l)["sample_id"] for l in rec.read_text().splitlines()]
    from sage_bench.registry import get_dataset
    assert len(ids) == len(set(ids)) == len(get_dataset("sage").select("tool_selection"))


@pytest.mark.slow
def test_eval_exits_1_when_a_method_got_no_answer(tmp_path):
    """An LLM method whose every request fails (HTTP 500): the table is printed, then the method is named as having
    no answer, exit 1; --llm-attempts 1 means one request per sample."""
    from test_llm import FakeServer
    fake = FakeServer(); fake.default = ("status", 500)
    try:
        r = sb("eval", "--methods", "timing.llm_based", "--samples", "3", "--output-dir", str(tmp_path), "--llm-attempts", "1",
               "--llm-timeout", "10", env={"SAGE_BENCH_LLM_URL": fake.url, "SAGE_BENCH_LLM_NO_CACHE": "1",
                                           "SAGE_BENCH_CACHE": str(tmp_path / "cache")})
    finally:
        fake.close()
    assert r.returncode == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-3000:])
    assert "timing.llm_based" in r.stderr and "no answer" in r.stderr and "== timing" in r.stdout, r.stderr[-3000:]
    assert len(fake.posts) == 3


@pytest.mark.sections
def test_ctrl_c_during_a_section_run_stops_its_notebook_cleanly(tmp_path):
    """`run` executes a notebook in a kernel process of its own session: Ctrl-C interrupts that kernel's cell (rather
    than killing the kernel mid-reply, which printed the kernel's and asyncio's tracebacks), then exits 130; nothing
    is written after the message."""
    import signal, time
    out = tmp_path / "out"
    p = subprocess.Popen([EXE, "run", "--section", "5.2", "--quick", "--skip-llm", "--output-dir", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=_ctrl_c_as_in_a_terminal)
    def n_records(): return sum(len(f.read_text().splitlines()) for f in out.rglob("*.jsonl") if "records" in f.parts)
    t0 = time.time()
    while p.poll() is None and not n_records() and time.time() - t0 < 600: time.sleep(0.1)
    assert p.poll() is None, "the section ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 130 and "Traceback" not in err and "Task exception" not in err, (p.returncode, err[-3000:])
    kept = n_records()
    assert err.strip().splitlines()[-1] == f"interrupted: {kept} records kept, rerun to resume", err[-1000:]
    time.sleep(2)
    assert n_records() == kept                     # the kernel stopped with us


@pytest.mark.slow
def test_interrupt_reaches_a_kernel_that_was_between_two_cells():
    """A kernel ignores SIGINT between cells: `run` repeats the interrupt until the notebook stops, and after
    `give_up_s` stops itself. (A child process named like a kernel stands in for it.)"""
    import signal, time
    from sage_bench.cli import _InterruptKernel
    from sage_bench.core import clear_interrupt
    code = ("import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep({}); "
            "signal.signal(signal.SIGINT, signal.default_int_handler); time.sleep(60)")
    kid = subprocess.Popen([sys.executable, "-c", code.format(1.5), "ipykernel_launcher"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        t0 = time.time()
        with _InterruptKernel(give_up_s=20):
            os.kill(os.getpid(), signal.SIGINT)          # Ctrl-C: forwarded while the "kernel" ignores it, then repeated
            assert kid.wait(timeout=15) != 0
        assert time.time() - t0 < 10
    finally:
        kid.kill(); kid.wait(); clear_interrupt()       # what cmd_run's caller (main) does when the command ends
    kid = subprocess.Popen([sys.executable, "-c", code.format(600), "ipykernel_launcher"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        t0 = time.time()
        with pytest.raises(KeyboardInterrupt):           # it never stops: after give_up_s this process does
            with _InterruptKernel(give_up_s=2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(30)                           # (a wait like papermill's, woken by the signal)
        assert time.time() - t0 < 10
    finally:
        kid.kill(); kid.wait(); clear_interrupt()


def test_an_interrupt_swallowed_by_a_finalizer_still_ends_the_command(monkeypatch, capsys):
    """A Ctrl-C whose KeyboardInterrupt lands in a finalizer is printed as "Exception ignored" and lost; the CLI's handler
    noted it (core.note_interrupt), so the command still ends as interrupted (130), and the next command starts clean."""
    from sage_bench import cli
    from sage_bench.core import note_interrupt
    monkeypatch.setitem(cli.__dict__, "cmd_list", lambda a: note_interrupt() or 0)
    assert cli.main(["list", "methods"]) == 130 and "interrupted" in capsys.readouterr().err
    monkeypatch.undo()
    assert cli.main(["list", "methods"]) == 0


def test_the_engine_stops_after_the_batch_in_which_an_interrupt_was_noted(tmp_path):
    "evaluate checks for a noted interrupt after each batch: the batch's records are kept, the rest is not predicted."
    from sage_bench.core import note_interrupt, clear_interrupt
    from sage_bench.engine import evaluate
    from sage_bench.registry import get_method
    m = get_method("selector.keyword")
    real = m.predict_batch
    def once(samples, libs):
        note_interrupt(); return real(samples, libs)
    m.predict_batch = once
    try:
        with pytest.raises(KeyboardInterrupt):
            evaluate(m, "sage", "test", samples=40, batch_size=16, output_dir=tmp_path, progress=False)
    finally:
        clear_interrupt()
    recs = list((tmp_path / "records").rglob("*.jsonl"))
    assert len(recs) == 1 and len(recs[0].read_text().splitlines()) == 16


def test_a_ctrl_c_inside_a_finalizer_is_noted_not_raised_there(capfd):
    "Ctrl-C while a __del__ runs: the CLI's handler notes it and returns (no 'Exception ignored' traceback); the next check raises."
    import gc, signal
    from sage_bench import cli
    from sage_bench.core import check_interrupt, clear_interrupt
    class Dies:
        def __del__(self): signal.raise_signal(signal.SIGINT)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)    # what a command starts with (the runner may differ)
    try:
        assert cli._note_sigint() is signal.default_int_handler
        d = Dies(); del d; gc.collect()
        with pytest.raises(KeyboardInterrupt): check_interrupt()
        assert "Exception ignored" not in capfd.readouterr().err
    finally:
        signal.signal(signal.SIGINT, before); clear_interrupt()
