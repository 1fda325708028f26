"""Tests of sage_bench.metrics against hand-computed values and independent reference implementations."""
import json, math
import numpy as np
import pytest
from sage_bench import metrics as M
from sage_bench.core import Record, read_jsonl, write_jsonl

approx = pytest.approx

# ---------------------------------------------------------------- timing

def test_timing_hand_computed():
    # gold    T T T T F F F F F
    # pred    T T F - T F F - T      (- = failed)
    # s1,s2 TP; s3 FN; s4 failed on positive -> FN; s5 FP; s6,s7 TN; s8 failed on negative -> FP; s9 FP
    preds = [True, True, False, None, True, False, False, None, True]
    golds = [True] * 4 + [False] * 5
    m = M.timing_metrics(preds, golds)
    assert m["confusion"] == dict(tp=2, fp=3, tn=2, fn=2)
    assert m["accuracy"] == approx(4 / 9)
    assert m["precision"] == approx(2 / 5)
    assert m["recall"] == approx(2 / 4) and m["relevance_detection"] == approx(2 / 4)
    assert m["f1"] == approx(2 * 2 / (2 * 2 + 3 + 2))          # 4/9
    assert m["irrelevance_detection"] == approx(2 / 5)


def test_timing_matches_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, confusion_matrix
    rng = np.random.default_rng(3)
    g = rng.random(200) < 0.4
    p = np.where(rng.random(200) < 0.7, g, ~g)
    m = M.timing_metrics([bool(x) for x in p], [{"call_tool": bool(x)} for x in g])
    assert m["accuracy"] == approx(accuracy_score(g, p))
    assert m["precision"] == approx(precision_score(g, p))
    assert m["recall"] == approx(recall_score(g, p))
    assert m["f1"] == approx(f1_score(g, p))
    tn, fp, fn, tp = confusion_matrix(g, p).ravel()
    assert m["confusion"] == dict(tp=tp, fp=fp, tn=tn, fn=fn)


def test_timing_undefined_and_degenerate():
    only_neg = M.timing_metrics([False, False, True], [False, False, False])
    assert only_neg["recall"] is None and only_neg["relevance_detection"] is None
    assert only_neg["irrelevance_detection"] == approx(2 / 3) and only_neg["precision"] == 0 and only_neg["f1"] == 0
    only_pos = M.timing_metrics([True, None], [True, True])
    assert only_pos["irrelevance_detection"] is None and only_pos["recall"] == 0.5 and only_pos["precision"] == 1.0
    never = M.timing_metrics([False, False], [True, True])
    assert never["precision"] == 0.0 and never["f1"] == 0.0     # claimed nothing, missed everything: 0, not undefined
    all_tn = M.timing_metrics([False], [False])
    assert all_tn["precision"] is None and all_tn["f1"] is None and all_tn["accuracy"] == 1.0
    empty = M.timing_metrics([], [])
    assert all(empty[k] is None for k in M.TIMING_METRICS)


def test_timing_failed_counts_as_wrong_class():
    assert M.timing_confusion([None], [True]) == dict(tp=0, fp=0, tn=0, fn=1)
    assert M.timing_confusion([None], [False]) == dict(tp=0, fp=1, tn=0, fn=0)
    # a malformed prediction is a failure too
    assert M.timing_confusion([{"call_tool": "yes"}, {"confidence": 1.0}], [True, False]) == dict(tp=0, fp=1, tn=0, fn=1)


def test_timing_bad_input():
    with pytest.raises(ValueError, match="gold"):
        M.timing_metrics([True], [{"call_tool": 1}])
    with pytest.raises(ValueError, match="2 predictions for 1"):
        M.timing_metrics([True, False], [True])

# ---------------------------------------------------------------- selection

def test_selection_hand_computed():
    # ranking t5 t1 t7 t1 t2 t9 t3; relevant {t1, t2, t3, t4}
    # de-duplicated: t5 t1 t7 t2 t9 t3 -> ranks t1=2, t2=4, t3=6; t4 missing
    rk, rel = ["t5", "t1", "t7", "t1", "t2", "t9", "t3"], ["t1", "t2", "t3", "t4"]
    assert M.relevant_ranks(rk, rel) == [2, 4, 6]
    assert [M.hit_at_k(rk, rel, k) for k in (1, 3, 5, 10)] == [0, 1, 1, 1]
    assert [M.recall_at_k(rk, rel, k) for k in (1, 3, 5, 10)] == approx([0, 1 / 4, 2 / 4, 3 / 4])
    assert [M.precision_at_k(rk, rel, k) for k in (1, 3, 5, 10)] == approx([0, 1 / 3, 2 / 5, 3 / 10])
    assert M.reciprocal_rank(rk, rel) == 0.5
    l2 = math.log2
    idcg3 = 1 + 1 / l2(3) + 1 / l2(4)
    idcg10 = idcg3 + 1 / l2(5)                                   # min(10, |R|=4) ideal positions
    assert M.ndcg_at_k(rk, rel, 3) == approx((1 / l2(3)) / idcg3)  # 0.29608
    assert M.ndcg_at_k(rk, rel, 3) == approx(0.296082, abs=1e-6)
    assert M.ndcg_at_k(rk, rel, 10) == approx((1 / l2(3) + 1 / l2(5) + 1 / l2(7)) / idcg10)


def test_selection_more_relevant_than_k():
    rel = [f"t{i}" for i in range(6)]
    rk = rel[:]                                                  # perfect ranking
    assert M.recall_at_k(rk, rel, 3) == 0.5                      # caps at k/|R|
    assert M.precision_at_k(rk, rel, 3) == 1.0
    assert M.ndcg_at_k(rk, rel, 3) == approx(1.0)                # ideal DCG over min(k, |R|) = 3
    assert M.ndcg_at_k(rk, rel, 10) == approx(1.0)               # ideal over 6 < 10


def test_selection_short_empty_none_duplicates():
    rel = ["a"]
    assert M.precision_at_k(["a"], rel, 5) == 0.2                # short ranking still divides by k
    for p in ([], None):
        assert (M.hit_at_k(p, rel, 1), M.recall_at_k(p, rel, 1), M.precision_at_k(p, rel, 1),
                M.reciprocal_rank(p, rel), M.ndcg_at_k(p, rel, 1)) == (0, 0, 0, 0, 0)
    # duplicates: keep first occurrence, so b moves up to rank 2
    assert M.relevant_ranks(["x", "x", "b"], ["b"]) == [2]
    assert M.precision_at_k(["a", "a", "a"], ["a", "b"], 3) == approx(1 / 3)
    assert M.recall_at_k(["a", "a"], ["a", "b"], 2) == 0.5
    assert M.reciprocal_rank(["x", "x", "x", "a"], ["a"]) == 0.5


def test_ndcg_matches_sklearn():
    from sklearn.metrics import ndcg_score
    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(30)]
    for _ in range(50):
        rel = list(rng.choice(ids, size=int(rng.integers(1, 6)), replace=False))
        rk = list(rng.permutation(ids))
        y_true = np.array([[1.0 if t in rel else 0.0 for t in ids]])
        y_score = np.array([[len(ids) - rk.index(t) for t in ids]], float)
        for k in (1, 3, 5, 10):
            assert M.ndcg_at_k(rk, rel, k) == approx(ndcg_score(y_true, y_score, k=k))


def test_selection_matrix_equals_helpers():
    rng = np.random.default_rng(1)
    ids = [f"t{i}" for i in range(20)]
    rks = [list(rng.choice(ids, size=12)) for _ in range(30)]     # with duplicates
    rels = [set(rng.choice(ids, size=int(rng.integers(1, 5)), replace=False)) for _ in range(30)]
    names, mat = M.selection_matrix(rks, rels, (1, 3, 5, 10))
    fn = {"hit": M.hit_at_k, "recall": M.recall_at_k, "precision": M.precision_at_k, "ndcg": M.ndcg_at_k}
    for j, name in enumerate(names):
        for i in range(30):
            if name == "mrr": want = M.reciprocal_rank(rks[i], rels[i], M.MRR_CUTOFF)
            else:
                m, k = name.split("@"); want = fn[m](rks[i], rels[i], int(k))
            assert mat[i, j] == approx(want), (name, i)

# ---------------------------------------------------------------- planning

def test_planning_hand_computed():
    gold = ["search", "filter", "book"]
    pred = ["search", "book", "filter", "pay"]
    assert M.plan_success(pred, gold) == 0
    assert M.step_prf(pred, gold) == approx((3 / 4, 1.0, 6 / 7))
    # pred edges (s,b) (b,f) (f,p); gold edges (s,f) (f,b): none shared
    assert M.edge_prf(pred, gold) == (0, 0, 0)
    assert M.normalized_lcs(pred, gold) == approx(2 / 4)


def test_planning_repeated_tools_multiset():
    gold = ["get", "get", "put", "get"]
    pred = ["get", "put", "put"]
    # M = min(3,1) + min(1,2) = 2 -> P = 2/3, R = 2/4
    assert M.step_prf(pred, gold) == approx((2 / 3, 1 / 2, 2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2)))
    # pred edges {gp, pp}; gold edges {gg, gp, pg}: 1 shared -> P 1/2, R 1/3, F1 2/5
    assert M.edge_prf(pred, gold) == approx((1 / 2, 1 / 3, 2 / 5))
    # LCS(get put put, get get put get) = 2 (get put) -> 2/4
    assert M.normalized_lcs(pred, gold) == approx(0.5)
    # a repeated tool predicted twice gets two credits, once only one
    assert M.step_prf(["a", "a", "b"], ["a", "a", "c"]) == approx((2 / 3, 2 / 3, 2 / 3))
    # repeated edges: pred ab ba ab, gold ab bx xa ab -> ab matched twice: P 2/3, R 2/4
    assert M.edge_prf(list("abab"), list("abxab")) == approx((2 / 3, 1 / 2, 2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2)))
    assert M.step_prf(["a"], ["a", "a"]) == approx((1.0, 0.5, 2 / 3))


def test_planning_longer_shorter_single_empty():
    gold = ["a", "b", "c"]
    assert M.step_prf(["a", "b"], gold) == approx((1, 2 / 3, 0.8))
    assert M.edge_prf(["a", "b"], gold) == approx((1, 1 / 2, 2 / 3))
    assert M.normalized_lcs(["a", "b"], gold) == approx(2 / 3)
    longer = ["a", "b", "c", "a", "b"]
    assert M.step_prf(longer, gold) == approx((3 / 5, 1, 0.75))
    assert M.edge_prf(longer, gold) == approx((2 / 4, 1, 2 / 3))
    assert M.normalized_lcs(longer, gold) == approx(3 / 5)
    assert M.plan_success(longer, gold) == 0 and M.plan_success(list(gold), gold) == 1
    # one-step plans: both edge-less -> 1; only one edge-less -> 0
    assert M.edge_prf(["a"], ["a"]) == (1, 1, 1) and M.edge_prf(["a"], ["a", "b"]) == (0, 0, 0)
    assert M.edge_prf(["a", "b"], ["a"]) == (0, 0, 0)
    # empty / failed plan: zero everywhere, including the edge metrics of a one-step gold
    for p in ([], None):
        assert (M.plan_success(p, ["a"]), M.step_prf(p, ["a"]), M.edge_prf(p, ["a"]), M.normalized_lcs(p, ["a"])) == (0, (0, 0, 0), (0, 0, 0), 0)


def test_lcs_reference():
    def ref(a, b):                                               # plain recursive LCS
        from functools import lru_cache
        @lru_cache(None)
        def f(i, j):
            if i == len(a) or j == len(b): return 0
            return f(i + 1, j + 1) + 1 if a[i] == b[j] else max(f(i + 1, j), f(i, j + 1))
        return f(0, 0)
    rng = np.random.default_rng(5)
    for _ in range(200):
        a = tuple(rng.choice(list("abcd"), size=int(rng.integers(0, 8))))
        b = tuple(rng.choice(list("abcd"), size=int(rng.integers(0, 8))))
        assert M.lcs_length(a, b) == ref(a, b)

# ---------------------------------------------------------------- bootstrap

def test_bootstrap_vectorised_equals_naive_loop():
    rng = np.random.default_rng(11)
    x = rng.random((57, 3))
    fast = M.resample_means(x, n_boot=200, seed=9)
    idx = np.random.default_rng(9).integers(0, 57, size=(200, 57))
    naive = np.stack([x[i].mean(0) for i in idx])
    assert np.allclose(fast, naive)


def test_bootstrap_timing_f1_is_set_level():
    rng = np.random.default_rng(2)
    g = list(rng.random(120) < 0.5)
    p = [bool(a) if rng.random() < 0.75 else (None if rng.random() < 0.3 else not a) for a in g]
    oc = M.timing_outcomes(p, g)
    lo, hi = M.bootstrap_ci(oc, lambda m: M.timing_from_counts(*m.T)["f1"], n_boot=300, seed=4)
    # naive: resample records with the same indices and recompute F1 from scratch
    idx = np.random.default_rng(4).integers(0, 120, size=(300, 120))
    f1s = [M.timing_metrics([p[j] for j in i], [g[j] for j in i])["f1"] for i in idx]
    assert (lo, hi) == approx(tuple(np.percentile(f1s, [2.5, 97.5])))
    assert lo < M.timing_metrics(p, g)["f1"] < hi


def test_bootstrap_coverage_of_a_mean():
    # a 95% interval for a Bernoulli mean should cover the true p about 95% of the time
    rng = np.random.default_rng(123)
    cover = 0
    for t in range(200):
        x = (rng.random(150) < 0.3).astype(float)
        lo, hi = M.bootstrap_ci(x, n_boot=400, seed=t)
        cover += lo <= 0.3 <= hi
    assert 0.88 <= cover / 200 <= 0.99, cover


def test_bootstrap_edges():
    assert M.bootstrap_ci([]) == (None, None)
    assert M.bootstrap_ci([0.4] * 10) == approx((0.4, 0.4))
    # a statistic undefined on every resample gives None
    assert M.bootstrap_ci([1.0, 1.0], lambda m: m[:, 0] * np.nan) == (None, None)
    lo, hi = M.bootstrap_ci(np.eye(3), lambda m: m)
    assert lo.shape == hi.shape == (3,)

# ---------------------------------------------------------------- score_records

def _rec(i, ch, pred, gold, **kw):
    return Record("exp", "sage", "test", "m", f"s{i}", ch, prediction=pred, gold=gold, **kw)


def test_score_records_timing(tmp_path):
    preds = [True, True, False, None, True, False, False, None, True]
    golds = [True] * 4 + [False] * 5
    recs = [_rec(i, "timing", None if p is None else {"call_tool": p, "confidence": 0.9}, {"call_tool": g},
                 parse_status="failed" if p is None else "strict", latency_s=1.0, prompt_tokens=100, completion_tokens=10,
                 llm_calls=1, cached_calls=i % 2, error="server down" if p is None else None)
            for i, (p, g) in enumerate(zip(preds, golds))]
    r = M.score_records("timing", recs, n_boot=500)
    assert r["n"] == 9 and r["confusion"] == dict(tp=2, fp=3, tn=2, fn=2)
    assert set(r["metrics"]) == set(M.TIMING_METRICS)
    assert r["metrics"]["f1"]["value"] == approx(4 / 9) and r["metrics"]["irrelevance_detection"]["value"] == approx(2 / 5)
    for v in r["metrics"].values():
        assert v["ci_low"] <= v["value"] <= v["ci_high"]
    assert r["parse_failure_rate"] == approx(2 / 9) and r["error_rate"] == approx(2 / 9) and r["fallback_rate"] == 0
    assert (r["prompt_tokens"], r["completion_tokens"], r["llm_calls"], r["cached_calls"]) == (900, 90, 9, 4)
    assert r["latency_s_mean"] == 1.0
    # the same records through JSONL (as the store keeps them) and as dicts give the same result
    path = write_jsonl(tmp_path / "r.jsonl", recs)
    back, _ = read_jsonl(path, Record.from_dict)
    assert M.score_records("timing", back, n_boot=500) == r
    assert M.score_records("timing", [x.to_dict() for x in recs], n_boot=500) == r
    json.dumps(r)                                                # JSON-serialisable as is


def test_score_records_selection():
    recs = [_rec(0, "tool_selection", {"ranking": ["a", "b", "c"]}, {"relevant": ["a"]}),
            _rec(1, "tool_selection", {"ranking": ["x", "b", "b", "a"]}, {"relevant": ["a", "b"]}),
            _rec(2, "tool_selection", None, {"relevant": ["c"]}, fallback="selector.keyword"),
            _rec(3, "tool_selection", {"ranking": "a"}, {"relevant": ["a"]})]  # malformed: a string
    r = M.score_records("selection", recs, ks=(1, 3), n_boot=300)
    m = {k: v["value"] for k, v in r["metrics"].items()}
    assert set(m) == {"hit@1", "hit@3", "recall@1", "recall@3", "precision@1", "precision@3", "ndcg@1", "ndcg@3", "mrr"}
    # sample 1 de-duplicated: x b a -> ranks b=2, a=3
    assert m["hit@1"] == approx(1 / 4) and m["hit@3"] == approx(2 / 4)
    assert m["recall@3"] == approx((1 + 1) / 4) and m["precision@3"] == approx((1 / 3 + 2 / 3) / 4)
    assert m["mrr"] == approx((1 + 1 / 2) / 4)
    ndcg3_s1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg@3"] == approx((1 + ndcg3_s1) / 4)
    assert r["fallback_rate"] == 0.25 and r["malformed_predictions"] == 1 and r["no_prediction_rate"] == 0.25


def test_score_records_planning_by_length():
    data = [(["a", "b"], ["a", "b"]), (["b", "a"], ["a", "b"]), (["a"], ["a"]), (None, ["a"]),
            (["a", "b", "c"], ["a", "b", "d"])]
    recs = [_rec(i, "planning", None if p is None else {"steps": p}, {"steps": g, "arguments": [None] * len(g)})
            for i, (p, g) in enumerate(data)]
    r = M.score_records("planning", recs, n_boot=300)
    assert set(r["metrics"]) == set(M.PLANNING_METRICS)
    m = {k: v["value"] for k, v in r["metrics"].items()}
    assert m["plan_success"] == approx(2 / 5)
    assert m["step_f1"] == approx((1 + 1 + 1 + 0 + 2 / 3) / 5)
    assert m["edge_f1"] == approx((1 + 0 + 1 + 0 + 0.5) / 5)
    assert m["lcs"] == approx((1 + 0.5 + 1 + 0 + 2 / 3) / 5)
    bl = r["by_length"]
    assert sorted(bl) == [1, 2, 3]
    assert bl[1] == {"n": 2, "plan_success": 0.5, "step_f1": 0.5, "edge_f1": 0.5, "lcs": 0.5}
    assert bl[2]["n"] == 2 and bl[2]["plan_success"] == 0.5 and bl[2]["step_f1"] == 1.0 and bl[2]["edge_f1"] == 0.5
    assert bl[3]["lcs"] == approx(2 / 3)


def test_score_records_steps_as_dicts():
    # a planning prediction whose steps carry arguments as {"tool_id", "arguments"} dicts
    r = M.score_records("planning", [dict(prediction={"steps": [{"tool_id": "a", "arguments": {}}, {"tool_id": "b"}]},
                                          gold={"steps": ["a", "b"]})], n_boot=10)
    assert r["metrics"]["plan_success"]["value"] == 1.0


def test_score_records_bad_input():
    with pytest.raises(ValueError, match="unknown challenge"):
        M.score_records("speed", [])
    with pytest.raises(ValueError, match="'s0'.*no gold"):
        M.score_records("timing", [_rec(0, "timing", {"call_tool": True}, None)])
    with pytest.raises(ValueError, match="'s0'.*'timing' record"):
        M.score_records("planning", [_rec(0, "timing", {"call_tool": True}, {"call_tool": True})])
    with pytest.raises(ValueError, match="'s0'.*selection gold"):
        M.score_records("tool_selection", [_rec(0, "tool_selection", {"ranking": []}, {"relevant": []})])
    with pytest.raises(ValueError, match="'s0'.*planning gold"):
        M.score_records("planning", [_rec(0, "planning", {"steps": []}, {"steps": []})])
    with pytest.raises(ValueError, match="ks"):
        M.score_records("tool_selection", [_rec(0, "tool_selection", None, {"relevant": ["a"]})], ks=(0,))


def test_score_records_empty():
    for ch in ("timing", "planning", "tool_selection"):
        r = M.score_records(ch, [])
        assert r["n"] == 0 and r["parse_failure_rate"] is None and r["latency_s_mean"] is None
        assert all(v == {"value": None, "ci_low": None, "ci_high": None} for v in r["metrics"].values())


def test_score_records_deterministic_and_seeded():
    recs = [_rec(i, "timing", {"call_tool": i % 3 == 0}, {"call_tool": i % 2 == 0}) for i in range(40)]
    a, b = M.score_records("timing", recs, seed=1), M.score_records("timing", recs, seed=1)
    c = M.score_records("timing", recs, seed=2)
    assert a == b and a["metrics"]["f1"]["value"] == c["metrics"]["f1"]["value"]
    assert a["metrics"]["f1"]["ci_low"] != c["metrics"]["f1"]["ci_low"] or a["metrics"]["f1"]["ci_high"] != c["metrics"]["f1"]["ci_high"]

# ---------------------------------------------------------------- mean_sd

def test_mean_sd():
    r = M.mean_sd([0.70, 0.74, 0.78, 0.74])
    assert r["mean"] == approx(0.74) and r["n"] == 4
    assert r["sd"] == approx(math.sqrt((0.0016 + 0 + 0.0016 + 0) / 3))
    assert r["sd"] == approx(np.std([0.70, 0.74, 0.78, 0.74], ddof=1))
    assert M.mean_sd([0.5]) == {"mean": 0.5, "sd": None, "n": 1}
    assert M.mean_sd([None, float("nan"), 1.0, 3.0]) == {"mean": 2.0, "sd": approx(math.sqrt(2)), "n": 2}
    assert M.mean_sd([]) == {"mean": None, "sd": None, "n": 0}


def test_per_sample_scores_agree_with_score_records():
    rng = np.random.default_rng(8)
    ids = [f"t{i}" for i in range(15)]
    recs = [_rec(i, "tool_selection", None if i % 7 == 0 else {"ranking": list(rng.permutation(ids))},
                 {"relevant": list(rng.choice(ids, size=2, replace=False))}) for i in range(40)]
    ps, r = M.per_sample_scores("tool_selection", recs), M.score_records("tool_selection", recs, n_boot=10)
    assert [p["sample_id"] for p in ps] == [f"s{i}" for i in range(40)]
    for k, v in r["metrics"].items():
        assert np.mean([p[k] for p in ps]) == approx(v["value"])
    plans = [_rec(i, "planning", {"steps": list(rng.choice(list("abc"), size=int(rng.integers(1, 4))))},
                  {"steps": list(rng.choice(list("abc"), size=int(rng.integers(1, 4))))}) for i in range(30)]
    ps, r = M.per_sample_scores("planning", plans), M.score_records("planning", plans, n_boot=10)
    for k in M.PLANNING_METRICS:
        assert np.mean([p[k] for p in ps]) == approx(r["metrics"][k]["value"])
    for L, b in r["by_length"].items():
        assert b["n"] == sum(p["gold_length"] == L for p in ps)
    t = [_rec(i, "timing", {"call_tool": i % 3 == 0}, {"call_tool": i % 2 == 0}) for i in range(12)]
    ps = M.per_sample_scores("timing", t)
    conf = M.score_records("timing", t, n_boot=10)["confusion"]
    assert {o: sum(p["outcome"] == o for p in ps) for o in ("tp", "fp", "tn", "fn")} == conf
    assert np.mean([p["correct"] for p in ps]) == approx((conf["tp"] + conf["tn"]) / 12)


def test_per_sample_scores_bad_input():
    with pytest.raises(ValueError, match="'s0'.*no gold"):
        M.per_sample_scores("planning", [_rec(0, "planning", {"steps": ["a"]}, None)])
    with pytest.raises(ValueError, match="unknown challenge"):
        M.per_sample_scores("ranking", [])
