"""The metric registry (sage_bench.metrics.METRICS) is the one place that declares a metric's name, challenge, display
name, direction and role; everything else derives from it, and an undeclared metric is an error."""
import re
from pathlib import Path
import pytest
import sage_bench
from sage_bench import metrics as M

PKG = Path(sage_bench.__file__).parent
METRIC_NAMES = sorted(M.METRICS, key=len, reverse=True)
# a literal that ties a challenge to a metric name (`"timing": "f1"`, `"planning": ["plan_success", ...]`)
CHALLENGE_TO_METRIC = re.compile(r'"(?:timing|tool_selection|planning)"\s*:\s*\[?\s*"(' + "|".join(map(re.escape, METRIC_NAMES)) + r')"')


# modules whose owners have not moved their remaining metric choices onto the registry yet (none left)
PENDING: set = set()


def _sources(pending: bool = False):
    return [p for p in PKG.rglob("*.py") if p.name != "_modidx.py" and p != PKG / "metrics.py"
            and (pending or str(p.relative_to(PKG)) not in PENDING)]


def test_one_headline_per_challenge():
    for ch in ("timing", "tool_selection", "planning"):
        assert len(M.metrics_of(ch, "headline")) == 1
        assert M.SUMMARY_METRICS[ch][0] == M.HEADLINES[ch]
        assert set(M.TABLE_METRICS[ch]) <= set(M.metrics_of(ch))
    assert all(m.higher_is_better for m in M.METRICS.values())


def test_no_metric_metadata_outside_the_registry():
    "grep: no module but metrics.py maps a challenge to a metric name or spells a metric's display name."
    displays = {m.display for m in M.METRICS.values() if m.display != m.name and " " in m.display}   # e.g. 'normalised LCS', 'step F1'
    hits = []
    for p in _sources():
        text = p.read_text(encoding="utf-8")
        hits += [f"{p.relative_to(PKG)}: {m.group(0)}" for m in CHALLENGE_TO_METRIC.finditer(text)]
        hits += [f"{p.relative_to(PKG)}: display name {d!r}" for d in displays if f'"{d}"' in text]
    assert not hits, "metric metadata outside sage_bench/metrics.py:\n" + "\n".join(hits)
    for old in ("METRIC_NAMES", "KNOWN_METRICS", "HEADLINE_TEXT", "MAIN_METRIC", "MAIN = "):
        assert not [p for p in _sources() if re.search(rf"^{re.escape(old)}\b", p.read_text(encoding="utf-8"), re.M)], old


def test_old_constants_are_derived():
    from sage_bench import engine, paper
    from sage_bench.experiments import cross_dataset
    assert not hasattr(engine, "HEADLINE")                          # the table columns are metrics.TABLE_METRICS
    assert not hasattr(cross_dataset, "MAIN") and not hasattr(paper, "METRIC_NAMES") and not hasattr(paper, "KNOWN_METRICS")
    tm = pytest.importorskip("torch") and __import__("sage_bench.training.methods", fromlist=["HEADLINE"])
    assert tm.HEADLINE is M.HEADLINES


def test_scoring_names_are_the_declared_ones():
    assert M.TIMING_METRICS == tuple(M.timing_from_counts(1, 1, 1, 1))
    names, _ = M.selection_matrix([["a"]], [{"a"}])
    assert set(names) == set(M.metrics_of("tool_selection"))
    assert M.PLANNING_METRICS == tuple(M.metrics_of("planning"))
    r = M.score_records("tool_selection", [{"sample_id": "s", "prediction": {"ranking": ["a"]}, "gold": {"relevant": ["a"]}}], n_boot=10)
    assert all(M.is_metric(k) for k in r["metrics"])


def test_unknown_metric_is_an_error():
    with pytest.raises(M.UnknownMetric, match="bleu"): M.get_metric("bleu")
    with pytest.raises(KeyError): M.display_name("bleu")
    assert M.get_metric("hit@20").challenge == "tool_selection"      # any k of a declared family



def test_unknown_metric_in_a_result_row_is_an_error(tmp_path):
    "A result row with an undeclared metric is a loud error naming the file, in the reader the paper uses and in the writer."
    import json
    from sage_bench import paper
    from sage_bench.results import ResultFile, ResultFileError, write_result_file
    row = {"method": "m", "metrics": {"challenge": "tool_selection", "n": 3, "metrics": {"hit@5": {"value": 0.5}, "bleu": {"value": 0.4}}}}
    f = tmp_path / "paper1" / "section_5_4_cross_dataset" / "cross_dataset_results.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"results": [row]}))
    with pytest.raises(ResultFileError, match=r"cross_dataset_results.json does not have its layout.*bleu"):
        paper.read_result(f, "paper1/section_5_4_cross_dataset/cross_dataset_results.json")
    pdir = tmp_path / "paper"; pdir.mkdir(); (pdir / "paper.md").write_text("x")
    with pytest.raises(ResultFileError, match="bleu"): paper.prepare_paper(tmp_path, pdir)
    with pytest.raises(ResultFileError, match="bleu"): write_result_file(tmp_path / "x.json", {"results": [row]})
    assert not (tmp_path / "x.json").exists()
    good = {"method": "m", "metrics": {"challenge": "tool_selection", "n": 3, "metrics": {"hit@5": {"value": 0.5}}}}
    assert ResultFile.from_dict({"results": [good]}).rows[0].metric("hit@5").value == 0.5


def test_engine_row_rejects_unknown_metric():
    from sage_bench.engine import EvalResult
    r = EvalResult("m", "d", "test", "timing", {"n": 1, "metrics": {"accuracy": {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}}})
    assert r.row()["accuracy"] == 1.0 and "precision" not in r.row()
    with pytest.raises(M.UnknownMetric): r.row(["accuracy", "bleu"])
