"""Paper 2's notebook (nbs/06_sage_agent.ipynb) under papermill in quick mode: the drift study's result files, its tables and
figures, and their rebuild from the saved JSON alone."""
import json
import pytest

FILES = ("ablation.json", "tests.json", "online.json", "efficiency.json", "ssis.json")


@pytest.mark.sections
def test_paper2_notebook_runs_the_drift_study(tmp_path):
    from sage_bench.report import run_section, rebuild
    from sage_bench.training.sage_agent import COMPARISONS
    assert run_section("paper2", quick=True, skip_llm=True, output_dir=tmp_path).exists()
    root = tmp_path / "paper2/drift"
    A, T = (json.loads((root / f).read_text()) for f in ("ablation.json", "tests.json"))
    assert all((root / f).exists() for f in FILES) and A["quick"] is True and len(A["seeds"]) >= 2
    assert all(r["test_" + ch] >= 200 for r in A["stream"]["rounds"] for ch in ("timing", "tool_selection", "planning"))
    assert len(T["tests"]) == len(COMPARISONS) == 6 and all(t["per_sample"] and t["per_seed"] for t in T["tests"])
    assert len({r["parameters"] for r in A["runs"]}) == 1                                  # every ablation: the same parameter count
    figs = tmp_path / "paper1/figures"
    built = [figs / f"fig_paper2_drift_{n}.{e}" for n in ("online", "matrix") for e in ("pdf", "png")]
    for p in built: p.unlink()
    out = rebuild(["paper2"], tmp_path)
    assert not any(isinstance(p, str) for p in out["paper2"]) and all(p.exists() for p in built)
