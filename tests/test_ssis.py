"SSIS: each component, the weights, admission and memory of losses."
import math
import numpy as np
import pytest
from sage_bench.training.sage_agent import SSIS, SSISConfig


def test_components_and_weights():
    emb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    mem = np.array([[1, 0, 0]], np.float32)
    s = SSIS(SSISConfig(w_uncertainty=2.0, w_diversity=0.5, w_forgetting=3.0))
    s.observe(["a", "b"], [1.0, 2.0])
    sc = s.score(["a", "b", "c"], [1.5, 1.0, 9.0], [0.2, 0.4, 0.6], emb, mem)
    assert np.allclose(sc["uncertainty"], [0.2, 0.4, 0.6])
    assert np.allclose(sc["diversity"], [0.0, 1.0, 1.0])
    assert np.allclose(sc["forgetting"], [1 - math.exp(-0.5), 0.0, 0.0])   # b improved; c never seen
    assert np.allclose(sc["importance"], 2 * sc["uncertainty"] + 0.5 * sc["diversity"] + 3 * sc["forgetting"])


def test_each_weight_alone_orders_samples_by_its_component():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 8)).astype(np.float32)
    ent = rng.random(20)
    for w in ([1, 0, 0], [0, 1, 0]):
        s = SSIS(SSISConfig(*w, keep=0.25))
        sc = s.score([str(i) for i in range(20)], np.ones(20), ent, emb, emb[:3], sequential=False)
        comp = sc["uncertainty"] if w[0] else sc["diversity"]
        adm = s.admit(sc["importance"])
        assert len(adm) == 5 and set(adm) == set(np.argsort(-comp)[:5])


def test_margin_kind_and_errors():
    s = SSIS(SSISConfig(kind="margin"))
    assert np.allclose(s.uncertainty([0, 0], [0.9, 0.1]), [0.1, 0.9])
    with pytest.raises(ValueError): s.uncertainty([0.5])


def test_diversity_within_chunk_is_sequential():
    e = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    d = SSIS.diversity(e, None)
    assert d[0] == 1.0 and d[1] == pytest.approx(0.0, abs=1e-6) and d[2] == pytest.approx(1.0)
    assert np.allclose(SSIS.diversity(e, None, sequential=False), 1.0)


def test_admit_keeps_share_and_at_least_one():
    s = SSIS(SSISConfig(keep=0.35))
    assert len(s.admit(np.arange(100.0))) == 35 and list(s.admit(np.array([0.3]))) == [0]
    assert len(s.admit(np.array([]))) == 0


def test_forgetting_recognises_a_sample_under_a_new_library_version():
    from sage_bench.training.sage_agent import base_id
    s = SSIS()
    s.observe(["q7@v0"], [0.4])
    f = s.forgetting(["q7@v2", "q8@v2", "q7@v3"], [1.4, 3.0, 0.1])
    assert base_id("q7@v2") == "q7" and base_id("plain") == "plain"
    assert f[0] == pytest.approx(1 - math.exp(-1.0)) and f[1] == 0.0 and f[2] == 0.0   # recurred and got worse; new; got better


def test_diversity_at_replay_is_against_the_steps_samples_not_always_one():
    rep = np.array([[1, 0], [0, 1]], np.float32)          # two replayed samples' states
    new = np.array([[1, 0.05]], np.float32)               # the step's new sample is near the first
    d = SSIS.diversity(rep, new)
    assert d[0] < 0.01 and d[1] > 0.9
