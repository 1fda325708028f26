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


def test_list_datasets_shows_sage_counts():
    r = sb("list", "datasets")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("sage "))
    timing, planning, selection = (int(x) for x in line.split()[1:4])
    assert (timing, planning, selection) == (300, 300, 600)
    for name in ("acebench", "apibank", "toolalpaca", "bfcl", "toolbench", "taskbench", "metatool"):
        assert any(l.startswith(name) for l in r.stdout.splitlines()), name


def test_unknown_name_suggests_and_exits_2():
    r = sb("eval", "--dataset", "sage", "--methods", "selector.keywrd")
    assert r.returncode == 2 and "selector.keyword" in r.stderr
    r = sb("eval", "--dataset", "bfcll", "--methods", "selector.keyword")
    assert r.returncode == 2 and "bfcl" in r.stderr


def test_eval_prints_a_table_with_confidence_intervals(tmp_path):
    r = sb("eval", "--dataset", "sage", "--methods", "selector.keyword,timing.rule_based", "--samples", "20",
           "--output-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "hit@5" in r.stdout and "[" in r.stdout
    rows = json.loads((tmp_path / "eval_summary.json").read_text())
    assert {x["method"] for x in rows} == {"selector.keyword", "timing.rule_based"} and all(x["n"] == 20 for x in rows)


def test_train_dry_run_trains_nothing(tmp_path):
    r = sb("train", "--methods", "A_baseline,B1_random", "--quick", "--dry-run", "--output-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "A_baseline" in r.stdout and not any(tmp_path.rglob("*.json"))


def test_report_lists_every_experiment(tmp_path):
    r = sb("report", "--output-dir", str(tmp_path))
    assert r.returncode == 0
    for e in ("5.2", "5.3", "5.4", "5.5", "paper2"):
        assert e in r.stdout


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
