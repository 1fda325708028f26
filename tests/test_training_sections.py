"""Section 5.5 (training comparison) runs end to end under papermill in quick mode on the built-in `sage` data set
(without an LLM: the baselines, and the file says so), its table and figures rebuilt from the saved JSON alone;
`sage-bench train --dry-run` trains nothing. Paper 2 (the drift study): tests/test_drift_section.py."""
import json
from pathlib import Path

import pytest

from sage_bench.core import CHALLENGES

@pytest.fixture(scope="session")
def training_root(tmp_path_factory):
    "One results root for both quick runs (their own, so the lead's section fixtures are not touched)."
    return tmp_path_factory.mktemp("sage_training")


@pytest.fixture(scope="session")
def section_5_5(training_root):
    from sage_bench.report import run_section
    return run_section("5.5", quick=True, skip_llm=True, output_dir=training_root)


def _json(p: Path):
    return json.loads(p.read_text())


def _three_challenges(run: dict, n_test: dict):
    for ch in CHALLENGES:
        assert run[ch]["n"] == n_test[ch] > 0, (run["method"], ch)
        assert run[ch]["error_rate"] == 0 and run[ch]["metrics"], (run["method"], ch)


@pytest.fixture(scope="session")
def n_test():
    from sage_bench.registry import get_dataset
    ds = get_dataset("sage")
    return {ch: len(ds.select(ch, "test")) for ch in CHALLENGES}


def test_5_5_without_an_llm_scores_the_baselines_and_says_so(section_5_5, training_root, n_test):
    "With skip_llm (as this fixture runs it) nothing is trained; the baselines are scored on the quick test samples."
    from sage_bench.training import llm_sft as L
    assert section_5_5.exists()
    d = training_root / "paper1/section_5_5_training"
    p = _json(d / "training_comparison.json")
    assert p["dataset"] == "sage" and p["quick"] is True and p["provenance"]["seed"] == 42
    assert p["llm"] is False and "nothing was trained" in p["skipped"][0]["reason"] and p["methods"] == [] and p["tests"] == []
    expected = {b for ids in L.BASELINES.values() for b in ids} | {L.ENCODER_NET}
    assert set(p["summary"]) == expected and all(d["kind"] == "baseline" for d in p["summary"].values())
    n = L.LLMTrainSettings(quick=True).eval_samples
    for r in p["runs"]:
        for ch in CHALLENGES:
            if ch in r: assert r[ch]["n"] == min(n, n_test[ch]) and r[ch]["error_rate"] == 0, (r["method"], ch)
    assert set(CHALLENGES) <= {ch for r in p["runs"] if r["method"] == L.ENCODER_NET for ch in CHALLENGES if ch in r}
    assert p["notebook"]["wall_s"] > 0
    figs, tabs = training_root / "paper1/figures", training_root / "paper1/tables"
    assert (figs / "training_comparison.pdf").stat().st_size > 0 and (figs / "training_comparison.png").stat().st_size > 0
    tex = (tabs / "training_comparison.tex").read_text()
    assert "selector.keyword" in tex and "frozen-encoder" in tex


def test_tables_and_figures_rebuild_from_saved_json(section_5_5, training_root):
    "Paper 2's rebuild is tested with its drift study in tests/test_drift_section.py."
    from sage_bench.report import rebuild
    built = [training_root / "paper1/figures" / f"training_comparison.{ext}" for ext in ("pdf", "png")]
    built += [training_root / "paper1/tables" / "training_comparison.tex"]
    for p in built:
        p.unlink()
    out = rebuild(["5.5"], training_root)
    assert set(out) == {"5.5"} and not any(isinstance(p, str) for ps in out.values() for p in ps), out
    for p in built:
        assert p.exists() and p.stat().st_size > 0, p


def test_cli_train_dry_run_trains_nothing(monkeypatch, tmp_path, capsys):
    from sage_bench import cli
    from sage_bench.training import llm_sft as L
    for f in ("load_base", "train_llm_method", "start_llm_service" if hasattr(L, "start_llm_service") else "serve_run", "evaluate_llm"):
        monkeypatch.setattr(L, f, lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained or served")))
    rc = cli.main(["train", "--methods", "A_baseline,B3_cluster,C_continual", "--quick", "--dry-run", "--output-dir", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "ESTIMATED" in out and "smollm2-135m" in out
    plan = json.loads(out[out.index("\n{") + 1:])
    assert [p["method"] for p in plan["methods"]] == ["A_baseline", "B3_cluster", "C_continual"] and plan["quick"] is True
    A, B3, C = plan["methods"]
    assert A["examples (at most)"] == plan["pool"]["examples"] > B3["examples (at most)"] > 0 and C["example passes"] > 0
    assert plan["rates"] is None or plan["estimated_total_seconds"] > 0
    assert "accuracy" not in json.dumps(plan["methods"])          # a plan reports no metric
    assert not any(tmp_path.iterdir())                             # and writes nothing


def test_cli_train_unknown_method_is_a_usage_error(capsys):
    from sage_bench import cli
    assert cli.main(["train", "--methods", "A_basline", "--quick", "--dry-run"]) == 2
    assert "Did you mean 'A_baseline'" in capsys.readouterr().err
