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


def _tiny_lm():
    "A random two-layer llama with LoRA (no download): the replay and weighting logic, not the model, is under test."
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from transformers import LlamaConfig, LlamaForCausalLM
    from sage_bench.training import llm_sft as L
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     num_key_value_heads=2, max_position_embeddings=64))
    cfg = SFTConfig(quick=True, epochs=1, top_layers=0, lr=5e-2, accum=2, device="cpu", threads=1)
    return L.add_lora(m, cfg), cfg


def _item(i: int, version: int, recurring: bool = False):
    from sage_bench.training.llm_sft import Encoded
    rng = np.random.default_rng(1000 * version + i)
    p, a = rng.integers(3, 40, 6).tolist(), [5 + (i + version) % 4, 7, 9]
    ch = ("timing", "tool_selection", "planning")[i % 3]
    return D.Item(Encoded(f"v{version}s{i}#0", ch, p + a, [-100] * len(p) + a), f"s{i}#0", version, f"v{version}s{i}", recurring)


def test_ssis_replay_trains_replayed_examples_with_their_is_weights(monkeypatch):
    """The sum-tree draws' importance-sampling weights reach train_lora (arriving examples 1, replayed ones their draw's weight,
    summed for a slot drawn twice) and change what is learned: the same batch without them ends at other parameters."""
    from types import SimpleNamespace
    from sage_bench.training import llm_sft as L
    model, cfg = _tiny_lm()
    items = {"arrive": [[_item(i, v, v > 0 and i < 3) for i in range(8)] for v in range(3)],
             "test": [[_item(100 + i, v) for i in range(3)] for v in range(3)]}
    s = D.DriftLLMSettings(quick=True, sft=cfg, drift=DriftConfig(n_versions=3), budget=6, buffer=12, replay=0.5, n_boot=100)
    calls, real = [], L.train_lora

    def recording(model, tok, enc, cfg, **kw):
        before = L._snapshot(model)
        log = real(model, tok, enc, cfg, **kw)
        calls.append({"ids": [e.id for e in enc], "weights": kw.get("weights"), "log": log, "before": before,
                      "after": {n: p.detach().clone() for n, p in model.named_parameters() if n in before}})
        return log
    monkeypatch.setattr(D, "train_lora", recording)
    tok = SimpleNamespace(pad_token_id=0)
    rec = D.run_method("ssis_replay", model, tok, items, s, L._snapshot(model), seed=3)
    assert len(calls) == 3 and calls[0]["weights"] is None                       # round 0: nothing to replay, unweighted
    isw = {x["round"]: x for x in rec["replay"]["is_weights"]}
    assert set(isw) == {1, 2} and rec["replay"]["last_beta"] == 1.0
    for r in (1, 2):
        c, rd = calls[r], rec["rounds"][r]
        w, n_new = c["weights"], rd["new"]
        assert len(w) == len(c["ids"]) == rd["trained"] and w[:n_new] == [1.0] * n_new
        assert w[n_new:] == pytest.approx(isw[r]["applied"], abs=1e-4) and rd["replayed"] == len(isw[r]["applied"])
        assert sum(isw[r]["applied"]) == pytest.approx(sum(isw[r]["weights"]), abs=1e-3)   # every draw's weight is trained
        assert c["log"]["weights"]["min"] == pytest.approx(min(w)) and rd["weights"] == c["log"]["weights"]
    assert min(min(calls[r]["weights"]) for r in (1, 2)) < 1.0
    c = next(c for c in calls[1:] if min(c["weights"]) < 1.0)                # the weights change the training itself
    L._restore(model, c["before"])
    encs = {i.id: i.enc for v in items["arrive"] for i in v}
    real(model, tok, [encs[k] for k in c["ids"]], cfg)                         # the same batch, same seed, no weights
    unweighted = {n: p.detach().clone() for n, p in model.named_parameters() if n in c["before"]}
    assert any(not np.allclose(unweighted[n].numpy(), c["after"][n].numpy(), atol=1e-7) for n in unweighted)
    assert "applied" in rec["replay"]["note"] and "not applied" not in rec["replay"]["note"]


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
    assert all(x["weights"] for x in ss["rounds"][1:]) and all(x["applied"] for x in ss["replay"]["is_weights"])
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
