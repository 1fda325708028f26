"Tests of the six tool-selection methods (sage_bench.methods.selection)."
import json, math, re
import numpy as np
import pytest
from sage_bench.core import Tool, ToolLibrary, SelectionSample
from sage_bench.methods.base import blind
from sage_bench.registry import get_method, method_ids
from sage_bench.methods import selection as S
from sage_bench.testing import ScriptedLLM
from sage_bench.methods.selection import (fixture_library, fixture_samples, rrf, bm25_index, keyword_text,
                                          Tokenizer, KeywordSelector, EmbeddingSelector, HybridSelector, GorillaSelector,
                                          LLMDirectSelector, DFSDTSelector, build_tree)

LIB = fixture_library()
SAMPLES = [blind(s) for s in fixture_samples()]
IDS = ["selector.keyword", "selector.embedding", "selector.hybrid", "selector.gorilla", "selector.dfsdt", "selector.llm_direct"]


def first_of_enum(messages, schema):
    "A scripted LLM that answers with the first allowed id(s) of whatever it is asked."
    key = next(iter(schema["properties"]))
    enum = schema["properties"][key]["items"]["enum"]
    ans = {key: enum[:1]}
    if "complete" in schema["properties"]: ans["complete"] = True
    return ans


def make(mid, **kw):
    if get_method.__module__ and mid in ("selector.gorilla", "selector.dfsdt", "selector.llm_direct"):
        kw.setdefault("client", ScriptedLLM(first_of_enum))
    return get_method(mid, **kw)


def well_formed(o, lib, top_k=50):
    assert o.error is None, o.error
    r = o.prediction["ranking"]
    assert isinstance(r, list) and len(r) == min(top_k, len(lib)) and len(set(r)) == len(r) and set(r) <= set(lib.ids)


def test_all_six_registered():
    assert set(IDS) <= set(method_ids("tool_selection"))
    assert set(method_ids("tool_selection", skip_llm=True)) >= {"selector.keyword", "selector.embedding", "selector.hybrid"}
    assert not set(method_ids("tool_selection", skip_llm=True)) & {"selector.gorilla", "selector.dfsdt", "selector.llm_direct"}


@pytest.mark.parametrize("mid", IDS)
def test_each_method_well_formed_and_deterministic(mid):
    m = make(mid)
    outs = m.predict_batch(SAMPLES, [LIB] * len(SAMPLES))
    assert len(outs) == len(SAMPLES)
    for o in outs:
        well_formed(o, LIB)
        assert o.latency_s is not None and o.latency_s >= 0
    again = make(mid).predict_batch(SAMPLES, [LIB] * len(SAMPLES))
    assert [o.prediction for o in outs] == [o.prediction for o in again]
    # no peeking: the labelled sample gives the same ranking as the blinded one
    labelled = make(mid).predict_batch(fixture_samples(), [LIB] * len(SAMPLES))
    assert [o.prediction for o in outs] == [o.prediction for o in labelled]
    if m.needs_llm:
        assert all(o.llm_calls >= 1 and o.parse_status == "strict" for o in outs)
    else:
        assert all(o.llm_calls == 0 and o.parse_status == "n/a" for o in outs)


def test_keyword_quality_on_fixture():
    outs = KeywordSelector().predict_batch(SAMPLES, [LIB] * len(SAMPLES))
    assert outs[1].prediction["ranking"][0] == "weather.forecast"
    assert set(outs[2].prediction["ranking"][:2]) == {"travel.flight", "travel.hotel"}


def _toolbench_library(n=400):
    p = S.__file__  # find the shared data sets beside the repo
    from sage_bench.registry import find_data_dir
    d = find_data_dir("toolbench", required=False)
    if d is None: return None
    tools, seen = [], set()
    for f in sorted((d / "solvable_queries" / "test_instruction").glob("*.json")):
        for q in json.loads(f.read_text()):
            for a in q["api_list"]:
                tid = f"{a['tool_name']}/{a['api_name']}"
                if tid in seen: continue
                seen.add(tid)
                props = {p["name"]: {"type": "string"} for p in a.get("required_parameters", []) + a.get("optional_parameters", [])}
                tools.append(Tool(id=tid, name=a["api_name"], description=a.get("api_description") or a["tool_name"],
                                  parameters={"type": "object", "properties": props}, category=a.get("category_name", "")))
                if len(tools) >= n: return ToolLibrary(tools, "toolbench-test")
    return ToolLibrary(tools, "toolbench-test")


@pytest.mark.parametrize("which", ["fixture", "toolbench"])
def test_keyword_ranking_equals_bm25s(which):
    import bm25s
    lib = LIB if which == "fixture" else _toolbench_library()
    if lib is None: pytest.skip("ToolBench data not found (shared/datasets/toolbench)")
    queries = [s.query for s in SAMPLES] + ["find songs by an artist", "latest news headlines about football", "currency exchange rates"]
    tok = Tokenizer()
    ref = bm25s.BM25()
    ref.index(tok.many([keyword_text(t) for t in lib]), show_progress=False)
    docs, scores = ref.retrieve([tok(q) for q in queries], k=len(lib), show_progress=False)
    qs = [SelectionSample(id=f"x{i}", dataset="t", split="test", query=q, relevant_tools=[lib.ids[0]]) for i, q in enumerate(queries)]
    outs = KeywordSelector(top_k=None).predict_batch([blind(s) for s in qs], [lib] * len(qs))
    for o, d, sc in zip(outs, docs, scores):
        ours = o.prediction["ranking"]
        # same scores, and the same order: bm25s's order with ties put in library order
        ref_order = sorted(range(len(lib)), key=lambda j: (-sc[list(d).index(j)] if j in set(d) else 0, j))
        full_sc = np.zeros(len(lib), np.float32); full_sc[d] = sc
        assert ours == [lib.ids[j] for j in sorted(range(len(lib)), key=lambda j: (-full_sc[j], j))]
        pos = {t: i for i, t in enumerate(ours)}
        for a, b in zip(d[:-1], d[1:]):          # where bm25s's scores differ, the order is identical
            if full_sc[a] > full_sc[b]: assert pos[lib.ids[a]] < pos[lib.ids[b]]


def test_rrf_hand_computed():
    fused = rrf([["a", "b", "c", "d"], ["b", "e", "a"]], k=60)
    expect = {"a": 1/61 + 1/63, "b": 1/62 + 1/61, "c": 1/63, "d": 1/64, "e": 1/62}
    assert [d for d, _ in fused] == ["b", "a", "e", "c", "d"]   # e and c: 1/62 > 1/63
    for d, s in fused: assert math.isclose(s, expect[d])
    assert [d for d, _ in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]   # tie: equal best rank, first list's order


def test_hybrid_is_rrf_of_components():
    h = HybridSelector(top_k=None)
    k = KeywordSelector(top_k=None).predict_batch(SAMPLES, [LIB] * 5)
    e = EmbeddingSelector(top_k=None).predict_batch(SAMPLES, [LIB] * 5)
    for o, ko, eo in zip(h.predict_batch(SAMPLES, [LIB] * 5), k, e):
        fused = rrf([ko.prediction["ranking"], eo.prediction["ranking"]], 60)
        assert o.prediction["ranking"] == [d for d, _ in fused]
        assert math.isclose(o.trace["rrf"][0], round(fused[0][1], 5))


def test_bad_sample_is_recorded_not_fatal():
    bad = blind(fixture_samples()[0]); object.__setattr__(bad, "query", "   ")
    for m in (KeywordSelector(), EmbeddingSelector(), HybridSelector(), GorillaSelector(client=ScriptedLLM(first_of_enum))):
        outs = m.predict_batch([SAMPLES[1], bad, SAMPLES[2]], [LIB] * 3)
        assert outs[1].prediction is None and "empty query" in outs[1].error
        assert outs[0].error is None and outs[2].error is None


def test_gorilla_reranks_and_falls_back():
    emb = EmbeddingSelector().predict(SAMPLES[0], LIB).prediction["ranking"]
    rev = lambda m, s: {"ranking": s["properties"]["ranking"]["items"]["enum"][::-1]}
    g = GorillaSelector(m=5, client=ScriptedLLM(rev))
    o = g.predict(SAMPLES[0], LIB)
    assert o.prediction["ranking"] == emb[:5][::-1] + emb[5:] and o.trace["n_llm_ranked"] == 5
    assert g.client.calls[0][1]["properties"]["ranking"]["items"]["enum"] == emb[:5]      # the enum is the top-M candidates
    o = GorillaSelector(m=5, client=ScriptedLLM(lambda m, s: "```not json")).predict(SAMPLES[0], LIB)
    assert o.fallback == "embedding" and o.parse_status == "failed" and o.prediction["ranking"] == emb
    o = GorillaSelector(m=5, client=ScriptedLLM(lambda m, s: {"ranking": ["not.a.tool"]})).predict(SAMPLES[0], LIB)
    assert o.fallback == "embedding" and o.trace["dropped_ids"] == ["not.a.tool"]


def down(messages, schema): raise ConnectionError("connection refused")


@pytest.mark.parametrize("cls", [GorillaSelector, LLMDirectSelector, DFSDTSelector])
def test_llm_down_is_a_recorded_failure(cls):
    outs = cls(client=ScriptedLLM(down)).predict_batch(SAMPLES[:2], [LIB] * 2)
    assert all(o.prediction is None and "connection refused" in o.error and o.fallback is None for o in outs)


def test_llm_direct_truncation_recorded():
    m = LLMDirectSelector(max_prompt_tokens=250, client=ScriptedLLM(first_of_enum))
    o = m.predict(SAMPLES[0], LIB)
    shown = m.client.calls[0][1]["properties"]["ranking"]["items"]["enum"]
    assert o.trace["truncated"] and o.trace["shown"] == len(shown) < len(LIB) and shown == LIB.ids[:len(shown)]
    assert o.prediction["ranking"][0] == LIB.ids[0] and o.trace["padding"] == "selector.keyword"
    o = LLMDirectSelector(client=ScriptedLLM(lambda m, s: "no idea")).predict(SAMPLES[0], LIB)
    assert o.prediction is None and o.parse_status == "failed"


def scripted_dfs(messages, schema):
    "Sends the search into the wrong category first (weather, then travel), then finance."
    u = messages[-1]["content"]
    if "choices" in schema["properties"]:
        labels = dict(re.findall(r"- (n\d+): category '(\w+)'", u))
        return {"choices": [k for want in ("weather", "travel", "finance") for k, c in labels.items() if c == want]}
    tools = schema["properties"]["tools"]["items"]["enum"]
    return {"tools": [t for t in tools if t == "finance.convert"], "complete": "finance.convert" in tools}


def test_dfsdt_backtracks():
    m = DFSDTSelector(max_children=5, branch=3, client=ScriptedLLM(scripted_dfs))
    o = m.predict(SAMPLES[0], LIB)
    path = [(v["label"].split(":")[0], v["status"]) for v in o.trace["tree"]]
    assert path == [("all tools", "expanded"), ("category 'weather'", "dead_end"), ("category 'travel'", "dead_end"),
                    ("category 'finance'", "found")]
    assert o.trace["backtracks"] == 2 and o.trace["complete"] and o.llm_calls == 4
    assert o.prediction["ranking"][0] == "finance.convert" and o.fallback is None
    # the same search with a budget of 3 calls never reaches finance: the record says so
    o = DFSDTSelector(max_children=5, branch=3, max_calls=3, client=ScriptedLLM(scripted_dfs)).predict(SAMPLES[0], LIB)
    assert o.trace["budget_exhausted"] and o.fallback == "selector.keyword" and o.trace["n_llm_ranked"] == 0


def test_dfsdt_deep_tree_and_unparsed_node():
    tools = [Tool(id=f"t{i}", name=f"tool_{i}", description=f"does thing number {i}") for i in range(40)]
    lib = ToolLibrary(tools, "flat40")
    tree = build_tree(lib, max_children=4)
    def leaves(n): return [n] if n.is_leaf else [x for c in n.children for x in leaves(c)]
    assert sorted(t for l in leaves(tree) for t in l.tools) == sorted(lib.ids) and all(len(l.tools) <= 4 for l in leaves(tree))
    calls = []
    def reply(messages, schema):
        calls.append(1)
        if len(calls) == 2: return "garbage"              # the first child's expansion is unparseable
        if "choices" in schema["properties"]: return {"choices": schema["properties"]["choices"]["items"]["enum"][:2]}
        return first_of_enum(messages, schema)
    q = blind(SelectionSample(id="z", dataset="t", split="test", query="thing number 7", relevant_tools=["t7"]))
    o = DFSDTSelector(max_children=4, client=ScriptedLLM(reply)).predict(q, lib)
    st = [(v["depth"], v["status"]) for v in o.trace["tree"]]
    assert st[:3] == [(0, "expanded"), (1, "unparsed"), (1, "expanded")] and ("found" in dict(st[3:]).values() or (3, "found") in st or (2, "found") in st)
    assert o.parse_status == "failed" and o.trace["n_llm_ranked"] >= 1 and o.trace["backtracks"] >= 1 and o.fallback is None


from conftest import real_server_mark

llm = real_server_mark()


@llm
@pytest.mark.parametrize("mid", ["selector.gorilla", "selector.llm_direct", "selector.dfsdt"])
def test_llm_methods_against_real_server(mid):
    m = get_method(mid)
    outs = m.predict_batch(SAMPLES[:2], [LIB] * 2)
    for o in outs:
        assert o.error is None, o.error
        well_formed(o, LIB)
        assert o.llm_calls >= 1 and o.parse_status in ("strict", "fenced", "lenient", "failed")
        assert o.prompt_tokens > 0 or o.cached_calls > 0
