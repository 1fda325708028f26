"Training (section 5.5) and SAGE-Agent end to end on the small toy data set (hashing encoder, seconds)."
import json
import numpy as np
import pytest
from sage_bench.training import methods as tmeth
from sage_bench.training.model import (toy_dataset, TextEncoder, hashing_embed, ModelConfig, build_model, train,
                                       sample_stats, task_scores)
from sage_bench.training.continual import make_stream, run_continual, ContinualConfig
from sage_bench.training.sage_agent import run_sage, sage_config, ABLATIONS

MC = ModelConfig(hidden=64, heads=2)


@pytest.fixture(scope="module")
def toy():
    ds = toy_dataset()
    return ds, tmeth.prepare(ds, TextEncoder(hashing_embed, "hashing"))


@pytest.fixture(scope="module")
def settings():
    return tmeth.TrainSettings(quick=True, epochs=6, epochs_per_round=4, n_rounds=3, window=2, model=MC)


def test_training_lowers_loss_and_beats_untrained(toy):
    ds, P = toy
    tr, te = P.idx("train"), P.idx("test")
    m0 = build_model(MC, seed=3)
    m1, log = train(P.F, tr, ModelConfig(**{**MC.__dict__, "epochs": 15}), seed=3)
    assert float(sample_stats(m1, P.F, tr)["loss"].mean()) < 0.7 * float(sample_stats(m0, P.F, tr)["loss"].mean())
    assert task_scores(m1, P.F, te)["mean"] > task_scores(m0, P.F, te)["mean"]


def test_seeded_training_is_reproducible(toy):
    ds, P = toy
    tr = P.idx("train")
    a, _ = train(P.F, tr, MC, seed=5, epochs=2)
    b, _ = train(P.F, tr, MC, seed=5, epochs=2)
    assert all(np.allclose(x.detach().numpy(), y.detach().numpy()) for x, y in zip(a.parameters(), b.parameters()))


def test_cross_attention_off_changes_the_model():
    on, off = build_model(ModelConfig(hidden=32, heads=2), seed=0), build_model(ModelConfig(hidden=32, heads=2, cross_attention=False), seed=0)
    import torch
    q = torch.randn(4, 384)
    assert not torch.allclose(on.tokens(q), off.tokens(q))


@pytest.mark.parametrize("name", list(tmeth.METHODS_5_5) + list(ABLATIONS))
def test_every_variant_trains_for_real(toy, settings, name):
    ds, P = toy
    tm = tmeth.train_variant(name, P, settings, seed=0)
    assert tm.info["train"]["steps"] > 0 and tm.info["wall_s"] > 0
    share = tm.info["data_share"]
    if name in ("A_baseline", "C_continual", "SAGE_sft_baseline"): assert share == 1.0
    else: assert 0.3 < share < 0.4, share
    # the trained weights differ from the initial ones
    init = build_model(tm.model.cfg, seed=0)
    assert any(not np.allclose(a.detach().numpy(), b.detach().numpy()) for a, b in zip(tm.model.parameters(), init.parameters()))


def test_evaluated_through_engine_on_three_challenges(toy, settings, tmp_path):
    ds, P = toy
    tmeth.run_training(["A_baseline", "D_combined"], dataset=ds, output_dir=tmp_path, settings=settings, progress=False)
    saved = json.loads((tmp_path / "paper1/frozen_encoder_net/training_comparison_network.json").read_text())
    for run in saved["runs"]:
        for ch in ("timing", "tool_selection", "planning"):
            assert run[ch]["n"] == len(ds.select(ch, "test")) and run[ch]["error_rate"] == 0
    recs = list((tmp_path / "paper1/frozen_encoder_net/records").rglob("*.jsonl"))
    assert len(recs) == 6                                          # 2 methods x 3 challenges
    assert "stream" in saved["runs"][1] and "forgetting" in saved["runs"][1]["stream"]["metrics"]["mean"]
    assert saved["summary"]["A_baseline"]["tool_selection/hit@5"]["mean"] > 0.5


def test_dry_run_trains_nothing(toy, monkeypatch, tmp_path):
    ds, _ = toy
    monkeypatch.setattr(tmeth, "train_variant", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    plan = tmeth.run_training("all", dataset=ds, dry_run=True, output_dir=tmp_path)
    assert [p["method"] for p in plan["methods"]] == list(tmeth.METHODS_5_5)
    assert not any(tmp_path.iterdir())
    assert all(set(p) == {"method", "train_samples", "data_share", "steps", "sample_steps", "eval_samples", "estimated_seconds"}
               for p in plan["methods"])


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="B2_stratified"): tmeth.parse_methods("B2_stratifed")


def test_registered_method_trains_in_fit(toy):
    from sage_bench.registry import get_method
    from sage_bench.methods.base import blind
    ds, P = toy
    m = get_method("trained.frozen_encoder_planner", variant="B1_random")
    assert m.challenge == "planning"
    tmeth._PREPARED[(ds.name, ds.tools.fingerprint, len(ds.samples), tmeth._default_encoder().name)] = P  # no model load in tests
    m.fit(ds.select("planning", "train"), ds)
    s = ds.select("planning", "test")[:3]
    outs = m.predict_batch([blind(x) for x in s], [ds.candidates(x) for x in s])
    assert all(o.prediction and o.prediction["steps"] for o in outs)
    with pytest.raises(RuntimeError): tmeth.TrainedTiming().predict_batch([], [])


def test_continual_replays_earlier_rounds(toy):
    ds, P = toy
    S = make_stream(P.F, P.idx("train"), P.idx("test"), P.tool_categories, 3, 2, seed=0)
    _, rep = run_continual(P.F, S, ContinualConfig("replay+ewc", epochs_per_round=2, buffer_size=200), MC, seed=0)
    assert [r["trained_on"] - r["new_used"] for r in rep["rounds"]] == [0, len(S[0].train), len(S[0].train) + len(S[1].train)]
    assert np.asarray(rep["R"]["mean"]).shape == (3, 3) and len(rep["b"]["mean"]) == 3


def test_sage_ssis_uses_a_share_of_the_data(toy):
    ds, P = toy
    S = make_stream(P.F, P.idx("train"), P.idx("test"), P.tool_categories, 3, 2, seed=0)
    _, full = run_sage(P.F, S, sage_config("SAGE_full", epochs_per_round=3), MC, seed=0, evaluate=False)
    _, base = run_sage(P.F, S, sage_config("SAGE_sft_baseline", epochs_per_round=3), MC, seed=0, evaluate=False)
    assert base["train"]["data_share"] == 1.0 and 0.3 < full["train"]["data_share"] < 0.4
    assert set(full["ssis_components"]) == {"uncertainty", "diversity", "forgetting"}
