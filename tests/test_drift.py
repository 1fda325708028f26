"""The drift stream of versioned tool libraries (training.drift): the four kinds of change, gold following renames and
successors, argument names following re-parameterisation, recurrence across rounds, and test sets grown to 200 per challenge."""
import pytest
from sage_bench.core import CHALLENGES
from sage_bench.training.drift import DriftConfig, make_drift_stream, make_versions, render, composite, grow
from sage_bench.training.model import toy_dataset


@pytest.fixture(scope="module")
def sage_ds():
    from sage_bench.registry import get_dataset, load_plugins
    load_plugins()
    return get_dataset("sage")


@pytest.fixture(scope="module")
def sage_stream(sage_ds):
    return make_drift_stream(sage_ds, DriftConfig(n_versions=3, train_per_round=120, n_test=200, seed=7))


def _gold(s):
    return list(getattr(s, "relevant_tools", []) or []) + [st.tool_id for st in getattr(s, "steps", []) or []]


def test_versions_change_tools_and_gold_follows(sage_ds):
    V = make_versions(sage_ds.tools, DriftConfig(n_versions=4, seed=1))
    assert [v.k for v in V] == [0, 1, 2, 3]
    for u, v in zip(V, V[1:]):
        assert all(len(v.changes[k]) > 0 for k in ("rename", "redescribe", "deprecate", "reparam"))
        names = {t.name for t in v.library}
        for o in v.changes["rename"]:
            assert v.library[v.lineage[o]].name != u.library[u.lineage[o]].name
        for o in v.changes["deprecate"]:
            succ = v.library[v.lineage[o]]
            dep = [t for t in v.library if t.description.startswith(f"Deprecated: use {succ.name} instead.")]
            assert dep and succ.name in names                        # the deprecated tool stays one version, its successor is gold
        for o in v.changes["redescribe"]:
            assert v.library[v.lineage[o]].description != u.library[u.lineage[o]].description
        for o in v.changes["reparam"]:
            old = u.library[u.lineage[o]].param_names
            assert set(v.library[v.lineage[o]].param_names) != set(old) or not old
    # deprecated tools are gone one version later
    dep1 = {t.id for t in V[1].library if t.description.startswith("Deprecated")}
    assert dep1 and not dep1 & set(V[2].library.ids)
    # a plan's gold follows renames and successors, its argument names follow re-parameterisation
    s = next(x for x in sage_ds.samples if x.challenge == "planning" and any(st.arguments for st in x.steps)
             and any(st.tool_id in V[3].changes["reparam"] for st in x.steps))
    r = render(s, V[3])
    for a, b in zip(s.steps, r.steps):
        assert b.tool_id == V[3].lineage[a.tool_id] and b.tool_id in V[3].library
        assert set(b.arguments or {}) == {V[3].pmaps[a.tool_id].get(k, k) for k in a.arguments or {}}


def test_stream_recurs_and_has_200_test_samples_per_challenge(sage_stream, sage_ds):
    st = sage_stream
    rows = st.describe()
    assert len(rows) == 3 and rows[0]["recurring"] == 0 and all(r["recurring"] > 0 for r in rows[1:])
    for r in range(3):
        lib = st.versions[r].library
        for ch in CHALLENGES:
            assert sum(s.challenge == ch for s in st.test[r]) >= 200
        assert all(t in lib for s in st.train[r] + st.test[r] for t in _gold(s))
    # the test sets are the same base samples under each version; gold changes with the version
    assert [s.meta["base"] for s in st.test[0]] == [s.meta["base"] for s in st.test[2]]
    assert rows[2]["gold_changed_tool_selection"] > rows[1]["gold_changed_tool_selection"] > 0
    # no training sample of the data set is a part of a test composite
    train_ids = {s.id for s in sage_ds.samples if s.split == "train"}
    assert not any(p in train_ids for s in st.test[0] for p in s.meta.get("parts", []))


def test_composites_keep_labels_and_shift_references():
    ds = toy_dataset()
    tm = [s for s in ds.samples if s.challenge == "timing" and s.split == "test"]
    g = grow(tm, 40, seed=0)
    by = {s.id: s for s in tm}
    assert len(g) == 40 and all(by[p].should_call_tool == s.should_call_tool for s in g for p in s.meta.get("parts", [s.id]))
    from sage_bench.core import PlanningSample, PlanStep
    a = PlanningSample("a", "t", "test", "do a", [PlanStep("x"), PlanStep("y", {"q": "$step0.v"}, [0])])
    b = PlanningSample("b", "t", "test", "do b", [PlanStep("z"), PlanStep("w", {"q": "$step0.v"}, [0])])
    c = composite(a, b)
    assert [s.tool_id for s in c.steps] == ["x", "y", "z", "w"] and c.steps[3].arguments == {"q": "$step2.v"}
    assert c.steps[3].depends_on == [2]
