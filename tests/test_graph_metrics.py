"""Issue 15's scoring: the graph planning metrics (plan_success_graph, graph edge P/R/F1) against brute-force enumeration
of topological orders and against TaskBench's link scoring re-implemented independently, and every selection metric
over the whole acceptable set."""
import itertools, random
import numpy as np
import pytest
from sage_bench import metrics as M
from sage_bench.core import PlanningSample, PlanStep, gold_of

approx = pytest.approx


def _orders(n, deps):
    "Every permutation of the n steps in which each step follows its dependencies (brute force)."
    g = M.graph_of(n, deps)
    return [p for p in itertools.permutations(range(n)) if all(p.index(d) < p.index(j) for j in range(n) for d in g[j])]


def _random_graph(rng, n):
    return [rng.choice("STUV") for _ in range(n)], [sorted(rng.sample(range(j), rng.randint(0, min(j, 3)))) for j in range(n)]


def test_plan_success_graph_is_brute_force_topological_order():
    rng, n_checked = random.Random(15), 0
    for _ in range(300):
        n = rng.randint(1, 6)
        tools, deps = _random_graph(rng, n)
        ok = {tuple(tools[j] for j in p) for p in _orders(n, deps)}
        cands = set(itertools.permutations(tools)) | {tuple(tools[1:]), tuple(tools) + (tools[0],), tuple(rng.choice("STUVW") for _ in tools)}
        for c in cands:
            assert M.plan_success_graph(list(c), tools, deps) == float(c in ok), (tools, deps, c)
            n_checked += 1
    assert n_checked > 3000


def test_graph_metrics_on_a_chain_equal_the_exact_ones():
    "With no dependency stated (or a chain stated) the graph metrics reduce to exact plan success and set-based edge F1."
    rng = random.Random(1)
    for _ in range(300):
        g = [rng.choice("abcd") for _ in range(rng.randint(1, 5))]
        p = [rng.choice("abcd") for _ in range(rng.randint(0, 5))]
        chain = [[] if j == 0 else [j - 1] for j in range(len(g))]
        for deps in (None, [[] for _ in g], chain):
            assert M.plan_success_graph(p, g, deps) == M.plan_success(p, g)
        if len(set(M.edges(p))) == len(M.edges(p)) and len(set(M.edges(g))) == len(M.edges(g)):   # no repeated pair: set = multiset
            assert M.graph_edge_prf(p, g) == approx(M.edge_prf(p, g))


def _taskbench_link_prf(gold_links, pred_links):
    """TaskBench's `link` metric (microsoft/JARVIS taskbench/evaluate.py), re-implemented: per sample the union of gold and
    predicted (source, target) links is flattened to 0/1 labels and sklearn's binary precision/recall/F1 is taken."""
    from sklearn.metrics import precision_recall_fscore_support as prfs
    gt, pr = [], []
    for g, p in zip(gold_links, pred_links):
        for link in set(g) | set(p):
            gt.append(int(link in g)); pr.append(int(link in p))
    return prfs(gt, pr, average="binary", zero_division=0)[:3]


def test_graph_edge_prf_matches_taskbench_per_sample():
    rng = random.Random(7)
    n_checked = 0
    for _ in range(400):
        n, m = rng.randint(2, 6), rng.randint(2, 6)
        gtools, gdeps = _random_graph(rng, n)
        ptools, pdeps = _random_graph(rng, m)
        if not any(gdeps) or not any(pdeps): continue         # both state links (a stated-nothing plan is read as a chain)
        gl = [(gtools[i], gtools[j]) for j in range(n) for i in gdeps[j]]
        pl = [(ptools[i], ptools[j]) for j in range(m) for i in pdeps[j]]
        assert M.graph_edge_prf(ptools, gtools, pdeps, gdeps) == approx(_taskbench_link_prf([gl], [pl])), (gtools, gdeps, ptools, pdeps)
        n_checked += 1
    assert n_checked > 150


def test_stated_gold_links_along_any_topological_order_score_one():
    rng = random.Random(3)
    for _ in range(100):
        n = rng.randint(2, 6)
        tools, deps = _random_graph(rng, n)
        g = M.graph_of(n, deps)
        for perm in _orders(n, deps):
            pos = {j: i for i, j in enumerate(perm)}
            pdeps = [sorted(pos[d] for d in g[j]) for j in perm]
            assert M.graph_edge_prf([tools[j] for j in perm], tools, pdeps, deps) == (1, 1, 1)
            assert M.plan_success_graph([tools[j] for j in perm], tools, deps) == 1


def _sample(tools, deps):
    return PlanningSample("p", "fixture", "test", request="do it", steps=[PlanStep(t, depends_on=d) for t, d in zip(tools, deps)])


def test_score_records_reads_the_gold_graph():
    "Records carry core.gold_of's `depends_on`: a valid reordering of independent steps is a graph success, not an exact one."
    gold = gold_of(_sample(list("ABCD"), [[], [], [0, 1], [2]]))
    preds = [{"steps": list("BACD")}, {"steps": list("ABCD")}, {"steps": list("ACBD")}, None,
             {"steps": list("BACD"), "depends_on": [[], [], [0, 1], [2]]}]
    recs = [{"sample_id": f"s{i}", "challenge": "planning", "prediction": p, "gold": gold} for i, p in enumerate(preds)]
    r = M.score_records("planning", recs, n_boot=50)
    m = {k: v["value"] for k, v in r["metrics"].items()}
    assert m["plan_success"] == approx(1 / 5) and m["plan_success_graph"] == approx(3 / 5)
    # links: gold {AC, BC, CD}; BACD as a chain {BA, AC, CD} 2/3; ABCD chain {AB, BC, CD} 2/3; ACBD {AC, CB, BD} 1/3; None 0; stated 1
    assert m["graph_edge_f1"] == approx((2 / 3 + 2 / 3 + 1 / 3 + 0 + 1) / 5)
    ps = M.per_sample_scores("planning", recs)
    assert [p["plan_success_graph"] for p in ps] == [1, 1, 0, 0, 1]
    for k in M.PLANNING_METRICS:
        assert np.mean([p[k] for p in ps]) == approx(m[k])
    assert {"plan_success_graph", "graph_edge_f1"} <= set(M.TABLE_METRICS["planning"])
    assert M.display_name("graph_edge_f1") == "graph edge F1" and M.HEADLINES["planning"] == "plan_success"


def test_malformed_gold_graph_names_the_sample():
    bad = {"steps": ["a", "b"], "depends_on": [[], [1]]}       # step 1 depends on itself
    with pytest.raises(ValueError, match="'s0'.*depends_on"):
        M.score_records("planning", [{"sample_id": "s0", "prediction": {"steps": ["a", "b"]}, "gold": bad}], n_boot=10)
    # a malformed predicted depends_on is read as not stated (a chain), not an error
    r = M.score_records("planning", [{"sample_id": "s0", "prediction": {"steps": ["a", "b"], "depends_on": "x"},
                                      "gold": {"steps": ["a", "b"], "depends_on": [[], [0]]}}], n_boot=10)
    assert r["metrics"]["graph_edge_f1"]["value"] == 1.0


def test_every_selection_metric_uses_the_whole_acceptable_set():
    "Ranking any acceptable tool first scores the same on every column of selection_matrix (what score_records computes)."
    rel = {"a", "b", "c"}
    names, mat = M.selection_matrix([[t, "x", "y"] for t in sorted(rel)], [rel] * 3)
    assert (mat == mat[0]).all() and dict(zip(names, mat[0]))["hit@1"] == 1 and dict(zip(names, mat[0]))["recall@3"] == approx(1 / 3)
    names, mat = M.selection_matrix([["c", "b", "a"]], [rel])
    row = dict(zip(names, mat[0]))
    assert row["recall@3"] == 1 and row["ndcg@3"] == approx(1) and row["precision@3"] == 1
