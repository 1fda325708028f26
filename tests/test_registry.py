"""The registry: a method registered for several challenges is one entry (listed under each, built for one with
`challenge=`, scored on each by `evaluate_many` under its own record names); a method registered `on_request` runs
only when named, so section 5.2 never runs `trained.llm`; the CLI says what to run when it has no adapter yet."""
from types import SimpleNamespace

import pytest

from sage_bench import registry as R


@pytest.fixture
def pair():
    "A real method of two challenges: timing.rule_based and selector.keyword behind one id."
    def factory(challenge, **config):
        m = R.get_method({"timing": "timing.rule_based", "tool_selection": "selector.keyword"}[challenge], **config)
        m.id = "test.pair"
        return m
    R.register_method("test.pair", ["timing", "tool_selection"], description="two challenges, one entry")(factory)
    yield "test.pair"
    R.unregister("method", "test.pair")


def test_a_method_of_several_challenges_is_one_entry(pair):
    e = R.lookup("method", pair)
    assert e.challenges == ("timing", "tool_selection") and e.challenge == "timing+tool_selection" and not e.on_request
    assert pair in R.method_ids("timing") and pair in R.method_ids("tool_selection") and pair not in R.method_ids("planning")
    assert R.method_ids().count(pair) == 1 and [x.name for x in R.entries("method")].count(pair) == 1
    assert R.get_method(pair, challenge="tool_selection").challenge == "tool_selection"
    with pytest.raises(ValueError, match="several challenges"): R.get_method(pair)
    with pytest.raises(ValueError, match="not 'planning'"): R.get_method(pair, challenge="planning")
    # a method of one challenge takes its own challenge (and no other)
    assert R.get_method("selector.keyword", challenge="tool_selection").challenge == "tool_selection"
    with pytest.raises(ValueError, match="not 'timing'"): R.get_method("selector.keyword", challenge="timing")
    with pytest.raises(ValueError, match="challenge must be one of"): R.register_method("test.bad", ("timing", "chess"))
    assert R.challenge_list("all") == R.CHALLENGES


def test_evaluate_many_scores_each_challenge_under_its_own_name(pair, tmp_path):
    from sage_bench.engine import evaluate_many
    res = evaluate_many([pair, "selector.keyword"], ["sage"], samples=3, output_dir=tmp_path, progress=False)
    assert [(r.method, r.challenge) for r in res] == [("test.pair:timing", "timing"), ("test.pair:tool_selection", "tool_selection"),
                                                      ("selector.keyword", "tool_selection")]
    assert all(r.metrics["n"] == 3 for r in res)
    recs = sorted(p.name for p in (tmp_path / "records/sage/test").glob("*.jsonl"))
    assert recs == ["selector.keyword.jsonl", "test.pair_timing.jsonl", "test.pair_tool_selection.jsonl"]
    # the records of the two challenges are apart: the selection records match selector.keyword's, sample for sample
    sel = {r.sample_id: r.prediction for r in res[1].records}
    assert sel == {r.sample_id: r.prediction for r in res[2].records}


def test_section_5_2_never_runs_an_on_request_method(monkeypatch, tmp_path):
    "5.2 over every method (LLM ones included) asks the engine for each registered method, never for trained.llm."
    from sage_bench.experiments import main_eval as ME
    asked = []
    def fake_evaluate(m, *a, **kw):
        asked.append(m)
        return SimpleNamespace(method=m, metrics={"n": 0, "metrics": {}}, config={"samples": None, "method_description": {}}, n_new=0)
    monkeypatch.setattr(ME, "evaluate", fake_evaluate)
    monkeypatch.setattr(ME, "_llm_up", lambda url: (True, ""))
    ME.run_main_eval(quick=True, output_dir=tmp_path, progress=False)
    assert "trained.llm" not in asked and R.lookup("method", "trained.llm").on_request
    assert sorted(asked) == sorted(R.method_ids())          # every method a run over all of them takes, once each
    assert "trained.llm" in R.method_ids("timing", on_request=True)


def test_cli_trained_llm_without_an_adapter_says_what_to_run(monkeypatch, tmp_path, capsys):
    from sage_bench.cli import main
    monkeypatch.setenv("SAGE_BENCH_HOME", str(tmp_path))          # no 5.5 run here: no adapter pointer
    rc = main(["eval", "--methods", "trained.llm", "--dataset", "sage", "--samples", "1", "--output-dir", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "trained.llm has no adapter" in err and "sage-bench train --quick --methods A_baseline --seed 42" in err
    out = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: out.append(" ".join(map(str, a))))
    assert main(["list", "methods"]) == 0
    row = next(x for x in out if x.startswith("trained.llm "))
    assert row.split()[1] == "all" and row.split()[2] == "yes"
