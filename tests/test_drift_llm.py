"""SSIS and priority replay choosing the SFT examples of a LoRA-tuned LLM over the drift stream
(sage_bench.training.drift_llm). The fast tests check the pieces on made-up inputs; the end-to-end test trains SmolLM2-135M
with LoRA on a tiny stream (marked slow and llm: the fast tier leaves it out) and checks that every method ran on the same
budget, that SSIS's three terms vary, and that the result file and its tables are written."""
import json

import numpy as np
import pytest

from sage_bench.training import drift_llm as D
from sage_bench.training.drift import DriftConfig
from sage_bench.training.llm_sft import SFTConfig
from sage_bench.training.sage_agent import SSIS


def test_choose_round_fills_the_budget():
    rng = np.random.default_rng(0)
    assert D.choose_round("ssis_replay", 6, 4, 1, [0.2, 0.9, 0.1, 0.8, 0.5, 0.0]).tolist() == [1, 3, 4]
    for m in ("sequential", "uniform_replay"):
        pick = D.choose_round(m, 6, 4, 1, rng=rng)
        assert len(pick) == 3 and len(set(pick.tolist())) == 3
    assert len(D.choose_round("sequential", 2, 4, 0)) == 2
    with pytest.raises(ValueError):
        D.choose_round("ssis_replay", 3, 2, 0)


def test_ssis_terms_follow_the_loss_and_states():
    ss = SSIS()
    st = {"loss": np.array([0.0, 3.0]), "rep": np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)}
    t = D.ssis_terms(ss, ["a#0", "b#0"], st, memory=np.array([[1.0, 0.05]], np.float32))
    assert t["uncertainty"][0] == 0 and t["uncertainty"][1] > 0.9 and t["diversity"][1] > t["diversity"][0]
    ss.observe(["a#0"], [0.0])
    assert D.ssis_terms(ss, ["a#0"], {"loss": np.array([1.0]), "rep": st["rep"][:1]})["forgetting"][0] > 0.5


@pytest.mark.slow
@pytest.mark.llm
def test_tiny_llm_drift_study_end_to_end(tmp_path):
    s = D.DriftLLMSettings(quick=True, sft=SFTConfig(quick=True, epochs=1, top_layers=2, accum=2, threads=1),
                           drift=DriftConfig(n_versions=3, train_per_round=6, recur=0.5, n_test=0), budget=4, buffer=8,
                           test_per_challenge=1, n_boot=200)
    res = D.run_drift_llm("sage", settings=s, output_dir=tmp_path, progress=False)
    f = tmp_path / D.RESULT_DIR / D.RESULT_FILE
    saved = json.loads(f.read_text())
    assert saved["provenance"]["config"]["methods"] == list(D.LLM_DRIFT_METHODS)
    runs = {r["method"]: r for r in saved["runs"]}
    assert set(runs) == set(D.LLM_DRIFT_METHODS)
    for r in runs.values():
        assert np.asarray(r["R"]["exact"]).shape == (3, 3) and np.asarray(r["R"]["loss"]).shape == (3, 3)
        assert all(x["trained"] <= s.budget for x in r["rounds"]) and r["train"]["example_passes"] > 0
        assert len(r["final"]["loss"]) == len(saved["stream"]["test_ids"])
    assert runs["sequential"]["rounds"][-1]["replayed"] == 0 and runs["uniform_replay"]["rounds"][-1]["replayed"] > 0
    ss = runs["ssis_replay"]
    assert ss["rounds"][-1]["replayed"] > 0 and ss["replay"]["draws"] == 2 and ss["replay"]["last_beta"] == 1.0
    vals = ss["ssis_values"]
    for k in ("uncertainty", "diversity"): assert np.std(vals["admission"][k]) > 0, k
    forgetting = sum((vals[ph]["forgetting"] for ph in vals), [])
    assert np.std(forgetting) > 0 and max(forgetting) > 0
    assert ss["replay"]["priorities"][-1]["max_over_min"] > 1
    assert {(t["a"], t["b"]) for t in saved["tests"]} >= {("ssis_replay", "sequential"), ("ssis_replay", "uniform_replay")}
    assert all(t["per_sample"]["all_versions/exact"]["n"] == len(saved["stream"]["test_ids"]) for t in saved["tests"])
    assert len(D.summary_table(res)) == 4 and len(D.tests_table(res)) and len(D.ssis_table(res))
    out = D.report_drift_llm(tmp_path)
    assert all(p.exists() for p in out)
    from types import SimpleNamespace
    from sage_bench.paper import Fragment
    frag = Fragment("paper2")
    text = D.drift_llm_paragraph(frag, f"{D.RESULT_DIR}/{D.RESULT_FILE}", SimpleNamespace(fields=saved))
    assert "ssis" in text and frag.claims
