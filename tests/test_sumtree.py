"SumTree and PriorityReplay against brute-force references."
import math
import numpy as np
import pytest
from sage_bench.training.sage_agent import SumTree, PriorityReplay


def brute_find(prios, u):
    "The slot whose prefix-sum interval [c_{i-1}, c_i) holds u."
    c = np.cumsum(prios)
    return int(np.searchsorted(c, u, side="right"))


@pytest.mark.parametrize("cap", [1, 2, 3, 7, 8, 33, 100])
def test_random_ops_match_brute_force(cap):
    rng = np.random.default_rng(cap)
    t, ref = SumTree(cap), np.zeros(cap)
    for step in range(400):
        s = int(rng.integers(cap)); p = float(rng.choice([0.0, rng.random() * 10]))
        t.set(s, p, s) if t.data[s] is None else t.update(s, p)
        ref[s] = p
        assert math.isclose(t.total, ref.sum(), rel_tol=1e-9, abs_tol=1e-9)
        assert t.min_priority == (ref.min() if all(x is not None for x in t.data) else min(ref[[i for i, d in enumerate(t.data) if d is not None]]))
        if ref.sum() > 0:
            for u in rng.random(5) * ref.sum():
                got = t.find(u)
                assert got == brute_find(ref, u), (u, ref)
                assert ref[got] > 0


def test_argmin_and_bounds():
    t = SumTree(6)
    for i, p in enumerate([3, 1, 4, 1.5, 9, 2]): t.set(i, p, i)
    assert t.argmin() == 1
    t.update(1, 10); assert t.argmin() == 3
    with pytest.raises(IndexError): t.update(6, 1.0)
    with pytest.raises(ValueError): t.update(0, -1.0)
    with pytest.raises(ValueError): t.update(0, float("nan"))
    with pytest.raises(ValueError): SumTree(3).find(0.5)       # empty


def test_sampling_frequencies_match_priorities():
    t = SumTree(5)
    prios = [1.0, 0.0, 2.0, 3.0, 4.0]
    for i, p in enumerate(prios): t.set(i, p, i)
    rng = np.random.default_rng(0)
    counts = np.bincount([t.find(u) for u in rng.random(20000) * t.total], minlength=5)
    assert counts[1] == 0
    assert np.allclose(counts / counts.sum(), np.array(prios) / sum(prios), atol=0.015)


def test_priority_replay_is_weights_and_annealing():
    pr = PriorityReplay(8, alpha=0.5, beta0=0.4, beta_steps=4, eps=0.0, seed=1)
    prios = [1, 4, 9, 16]
    for i, p in enumerate(prios): pr.add(i, p)
    slots, items, w = pr.sample(4)
    P = np.sqrt(prios) / np.sqrt(prios).sum()                   # alpha = 0.5
    beta = 0.4
    expect = (len(prios) * P[items]) ** -beta / (len(prios) * P.min()) ** -beta
    assert np.allclose(w, expect, rtol=1e-5)
    for _ in range(10): pr.sample(2)
    assert pr.beta == 1.0                                       # annealed to 1
    pr.update(slots, [0.0] * len(slots))
    assert all(pr.tree.priority(s) == 0.0 for s in slots)


def test_priority_replay_replaces_least_important_when_full():
    pr = PriorityReplay(3, alpha=1.0, eps=0.0, seed=0)
    for i, p in enumerate([5, 1, 3]): pr.add(f"x{i}", p)
    assert pr.add("low", 0.5) is None                           # less important than everything held
    assert pr.add("high", 4) == 1 and sorted(pr.tree.data) == ["high", "x0", "x2"]
    with pytest.raises(ValueError): PriorityReplay(2).sample(1)


def test_beta_reaches_one_at_the_last_planned_draw():
    pr = PriorityReplay(4, beta0=0.4, beta_steps=5, seed=0)
    for i in range(4): pr.add(i, 1.0 + i)
    betas = []
    for _ in range(5):
        pr.sample(2); betas.append(pr.last_beta)
    assert betas[0] == pytest.approx(0.4) and betas[-1] == pytest.approx(1.0) and np.all(np.diff(betas) > 0)


def test_run_sage_plans_exactly_the_draws_it_makes():
    from sage_bench.training.model import toy_dataset, featurize, TextEncoder, hashing_embed, ModelConfig
    from sage_bench.training.continual import make_stream
    from sage_bench.training.sage_agent import run_sage, sage_config
    ds = toy_dataset(); F = featurize(ds.samples, ds.tools, TextEncoder(hashing_embed, "hashing"))
    split = np.array([s.split for s in ds.samples])
    S = make_stream(F, np.flatnonzero(split == "train"), np.flatnonzero(split == "test"), [t.category for t in ds.tools], 3, 2, seed=0)
    _, res = run_sage(F, S, sage_config("SAGE_full", epochs_per_round=2, buffer_size=30), ModelConfig(hidden=32, heads=2), seed=0,
                      evaluate=False)
    assert res["replay"]["draws"] == res["replay"]["planned_draws"] > 0 and res["replay"]["last_beta"] == pytest.approx(1.0)
