"Tests of the tool-selection methods (sage_bench.methods.selection) and the retrieval module they use."
import json, math
import numpy as np
import pytest
from sage_bench.core import Tool, ToolLibrary, SelectionSample
from sage_bench.methods.base import blind, LLMMethod
from sage_bench.registry import get_method, method_ids
from sage_bench.testing import ScriptedLLM
from sage_bench.retrieval import Retriever
from sage_bench.methods.selection import (fixture_library, fixture_samples, rrf, keyword_text,
                                          Tokenizer, KeywordSelector, EmbeddingSelector, HybridSelector, GorillaSelector,
                                          LLMDirectSelector, LLMRerankSelector, DFSDTSelector, windows, search_schema)

LIB = fixture_library()
SAMPLES = [blind(s) for s in fixture_samples()]
RETRIEVAL = ["selector.keyword", "selector.embedding", "selector.hybrid"]
LLM = ["selector.llm_direct", "selector.llm_rerank", "selector.gorilla", "selector.dfsdt"]
IDS = RETRIEVAL + LLM


def first_listed(messages, schema):
    "A scripted LLM that answers any selector's request with the first tool it is allowed to name (a DFSDT search calls it, then finishes)."
    p = schema["properties"]
    if "queries" in p: return {"queries": [messages[-1]["content"].split("\n")[0][:100]]}   # the request's own words
    if "ranking" in p: return {"ranking": p["ranking"]["items"]["enum"][:1]}
    if "calls" in p: return {"calls": [{"api": p["calls"]["items"]["properties"]["api"]["enum"][0], "arguments": {}}]}
    if "Calls made so far" in messages[-1]["content"]: return {"action": "finish"}
    return {"action": "call", "tool": p["tool"]["enum"][0], "arguments": {}}


def make(mid, **kw):
    if mid in LLM: kw.setdefault("client", ScriptedLLM(first_listed))
    return get_method(mid, **kw)


def well_formed(o, lib, top_k=50, full=True):
    assert o.error is None, o.error
    r = o.prediction["ranking"]
    assert isinstance(r, list) and len(set(r)) == len(r) and set(r) <= set(lib.ids) and r
    if full: assert len(r) == min(top_k, len(lib))


def test_all_registered():
    assert set(IDS) <= set(method_ids("tool_selection"))
    assert set(method_ids("tool_selection", skip_llm=True)) >= set(RETRIEVAL)
    assert not set(method_ids("tool_selection", skip_llm=True)) & set(LLM)
    for mid in LLM:   # one failure policy: every LLM selector is an LLMMethod (the engine applies `fallback=`)
        assert isinstance(make(mid), LLMMethod)


@pytest.mark.parametrize("mid", IDS)
def test_each_method_well_formed_and_deterministic(mid):
    m = make(mid)
    outs = m.predict_batch(SAMPLES, [LIB] * len(SAMPLES))
    assert len(outs) == len(SAMPLES)
    for o in outs:
        # llm_direct and dfsdt rank only the tools the LLM named or called; the others continue with a retriever's order
        well_formed(o, LIB, full=mid not in ("selector.llm_direct", "selector.dfsdt"))
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
        assert math.isclose(o.trace["scores"][0], round(fused[0][1], 5))   # the fused RRF scores


def test_bad_sample_is_recorded_not_fatal():
    bad = blind(fixture_samples()[0]); object.__setattr__(bad, "query", "   ")
    for m in (KeywordSelector(), EmbeddingSelector(), HybridSelector(), *(make(mid) for mid in LLM)):
        outs = m.predict_batch([SAMPLES[1], bad, SAMPLES[2]], [LIB] * 3)
        assert outs[1].prediction is None and "empty query" in outs[1].error, m.id
        assert outs[0].error is None and outs[2].error is None


def test_retrieval_methods_record_tool_text_and_tokenizer():
    "Every retrieval method's configuration record names its tool-text template and (BM25) its tokenizer settings."
    assert set(KeywordSelector().describe()) == {"id", "challenge", "needs_llm", "config", "tokenizer", "retriever"}
    assert set(EmbeddingSelector().describe()) == {"id", "challenge", "needs_llm", "config", "embedding_model", "retriever"}
    assert set(HybridSelector().describe()) == {"id", "challenge", "needs_llm", "config", "embedding_model", "tokenizer", "retriever"}
    assert HybridSelector().describe()["config"] == {"top_k": 50, "seed": 42, "rrf_k": 60, "depth": 100, "model": None}
    from sage_bench.retrieval import TOOL_TEXT
    from sage_bench.methods.selection import LuceneBM25Selector
    assert KeywordSelector().describe()["retriever"]["tool_text"] == {"bm25": TOOL_TEXT["bm25"]}
    assert EmbeddingSelector().describe()["retriever"]["tool_text"] == {"dense": TOOL_TEXT["dense"]}
    kw, lu = KeywordSelector().describe()["retriever"], LuceneBM25Selector().describe()["retriever"]
    assert kw["tokenizer"]["kind"] == "project" and kw["tokenizer"]["n_stopwords"] == 318 and (kw["k1"], kw["b"]) == (1.5, 0.75)
    assert lu["tokenizer"] == {"kind": "lucene", "stem": True, "stopwords": True, "stemmer": "porter", "n_stopwords": 33,
                               "split_identifiers": False} and (lu["k1"], lu["b"]) == (1.2, 0.75)


def down(messages, schema): raise ConnectionError("connection refused")


@pytest.mark.parametrize("mid", LLM)
def test_llm_down_is_a_transport_failure_without_fallback(mid):
    outs = make(mid, client=ScriptedLLM(down)).predict_batch(SAMPLES[:2], [LIB] * 2)
    assert all(o.prediction is None and "connection refused" in o.error and o.fallback is None and o.transport_error for o in outs)


@pytest.mark.parametrize("mid", LLM)
def test_a_refused_request_is_a_final_failure(mid):
    "A request the server refused (e.g. a prompt longer than its context) fails the sample, not as a transport failure."
    from types import SimpleNamespace
    class Refuses(ScriptedLLM):
        def _resp(self, messages, schema):
            self.calls.append((messages, schema))
            return SimpleNamespace(text=None, parsed=None, parse_status="n/a", prompt_tokens=0, completion_tokens=0, latency_s=0.1,
                                   cached=False, error="HTTP 400: refused (context length exceeded)", transport_error=False)
    o = make(mid, client=Refuses(None)).predict(SAMPLES[0], LIB)
    assert o.prediction is None and "refused" in o.error and not o.transport_error and o.fallback is None


@pytest.mark.parametrize("mid", LLM)
def test_configuration_keys_and_fallback(mid):
    m = make(mid, fallback="selector.keyword")
    assert m.config["fallback"] == "selector.keyword" and m.describe()["config"]["fallback"] == "selector.keyword"
    with pytest.raises(TypeError): get_method(mid, client=ScriptedLLM(first_listed), not_a_key=1)
    with pytest.raises(ValueError): get_method(mid, fallback="selector.gorilla")           # a fallback must not need the LLM


def test_llm_direct_sees_every_tool_once_in_windows():
    "Every tool of the library is shown exactly once; the window size is max_prompt_tokens; the window's list starts the prompt."
    for budget in (100, 200, 3000):
        m = LLMDirectSelector(max_prompt_tokens=budget, client=ScriptedLLM(first_listed))
        o = m.predict(SAMPLES[0], LIB)
        wins = windows(LIB, budget, 80)
        assert o.trace["n_windows"] == len(wins) == o.llm_calls and o.trace["tools_seen"] == len(LIB) == sum(map(len, wins))
        assert [t for w in wins for t in w] == LIB.ids
        shown = [t for msgs, sch in m.client.calls for t in sch["properties"]["ranking"]["items"]["enum"]]
        assert set(shown) == set(LIB.ids)
        for (msgs, _), w in zip(m.client.calls, wins):
            u = msgs[1]["content"]
            assert u.startswith("Tools, part") and all(u.index(t) < u.index("User request") for t in w)
    assert len(windows(LIB, 100, 80)) > len(windows(LIB, 200, 80)) > len(windows(LIB, 3000, 80)) == 1


def test_llm_direct_prefix_is_the_same_for_every_request():
    "A window's prompt up to the carried tools and the request is the same for every sample (a prefix cache reuses it)."
    m = LLMDirectSelector(max_prompt_tokens=150, client=ScriptedLLM(first_listed))
    m.predict_batch(SAMPLES, [LIB] * len(SAMPLES))
    by_window = {}
    for msgs, _ in m.client.calls:
        u = msgs[1]["content"]
        head = u.split("\nBest tools found")[0].split("\nUser request")[0]
        by_window.setdefault(u.split(":")[0], set()).add(msgs[0]["content"] + head)
    assert len(by_window) == len(windows(LIB, 150, 80)) and all(len(v) == 1 for v in by_window.values())


def test_llm_direct_uses_no_retriever():
    "Nothing but the LLM's answers fills the ranking: an LLM that names one tool gives a one-tool ranking."
    o = LLMDirectSelector(client=ScriptedLLM(lambda m, s: {"ranking": ["comm.sms"]})).predict(SAMPLES[0], LIB)
    assert o.prediction["ranking"] == ["comm.sms"] and "padding" not in o.trace


def test_llm_rerank_reorders_the_top_m_and_keeps_the_retrieval_tail():
    hyb = Retriever("hybrid").rank(SAMPLES[0].query, LIB)
    rev = lambda m, s: {"ranking": s["properties"]["ranking"]["items"]["enum"][::-1]}
    r = LLMRerankSelector(m=5, client=ScriptedLLM(rev))
    o = r.predict(SAMPLES[0], LIB)
    assert o.prediction["ranking"] == hyb[:5][::-1] + hyb[5:] and r.client.calls[0][1]["properties"]["ranking"]["items"]["enum"] == hyb[:5]
    o = LLMRerankSelector(m=5, client=ScriptedLLM(lambda m, s: "```not json")).predict(SAMPLES[0], LIB)
    assert o.prediction is None and o.fallback is None and o.parse_status == "failed"
    from sage_bench.registry import lookup
    assert "capped" in lookup("method", "selector.llm_rerank").description


def test_gorilla_called_tools_lead_then_the_retriever_order():
    hyb = Retriever("hybrid").rank(SAMPLES[2].query, LIB)
    call = {"calls": [{"api": "travel.hotel", "arguments": {"city": "Denver"}},
                      {"api": "travel.flight", "arguments": {"origin": "BOS", "destination": "DEN", "date": "May 3"}}]}
    g = GorillaSelector(search_queries=False, m=6, client=ScriptedLLM(lambda m, s: call))
    o = g.predict(SAMPLES[2], LIB)
    assert o.prediction["ranking"] == ["travel.hotel", "travel.flight"] + [t for t in hyb if t not in ("travel.hotel", "travel.flight")]
    assert [c["api"] for c in o.trace["calls"]] == ["travel.hotel", "travel.flight"] and o.trace["documented"] == hyb[:6]
    (msgs, schema), = g.client.calls
    assert "Use this API documentation for reference:" in msgs[1]["content"] and msgs[1]["content"].startswith(SAMPLES[2].query)
    for t in hyb[:6]: assert json.dumps(t) in msgs[1]["content"]
    o = GorillaSelector(search_queries=False, m=6, client=ScriptedLLM(lambda m, s: "```not json")).predict(SAMPLES[0], LIB)
    assert o.prediction is None and o.fallback is None and "no call" in o.error


@pytest.mark.parametrize("cls", [GorillaSelector, DFSDTSelector])
def test_query_step_finds_what_the_request_does_not_name(cls):
    """With the query step (the default), the LLM's search queries bring tools the retriever does not rank for the
    request's words into the shortlist, ahead of (taken in turn with) the retriever's; the trace keeps the queries."""
    want = "finance.convert"
    def model(messages, schema):
        p = schema["properties"]
        if "queries" in p: return {"queries": ["convert an amount of money from one currency to another"]}
        if "calls" in p: return {"calls": [{"api": want, "arguments": {}}]}
        return {"action": "finish"} if f"call {want}" in messages[-1]["content"] else {"action": "call", "tool": want, "arguments": {}}
    q = SAMPLES[1]                                               # a request about the weather: the retriever does not rank the converter first
    assert Retriever("hybrid").rank(q.query, LIB)[0] != want
    m = cls(m=3, client=ScriptedLLM(model))
    o = m.predict(q, LIB)
    assert o.error is None and o.prediction["ranking"][0] == want and o.trace["queries"]
    listed = (o.trace.get("documented") or o.trace.get("candidates"))
    assert listed[0] == want and len(listed) == 3
    assert m.client.calls[0][1] == search_schema(3) and "do not see the tools" in m.client.calls[0][0][0]["content"]
    for bad in ({"queries": []}, {"queries": ["  "]}, "no json"):
        o = cls(m=3, client=ScriptedLLM(lambda m_, s_: bad)).predict(q, LIB)
        assert o.prediction is None and "search-query reply was unusable" in o.error and o.fallback is None


def scripted_dfs(messages, schema):
    "Calls the stock price first (wrong) and gives up after seeing it, then calls the converter and finishes."
    u = messages[-1]["content"]
    if "1. call finance.stock" in u: return {"action": "give_up"}
    if "1. call finance.convert" in u: return {"action": "finish"}
    if "tried here and failed" in u: return {"action": "call", "tool": "finance.convert", "arguments": {"amount": "250"}}
    return {"action": "call", "tool": "finance.stock", "arguments": {"ticker": "EUR"}}


def test_dfsdt_gives_up_backtracks_and_ranks_confirmed_first():
    m = DFSDTSelector(search_queries=False, m=8, client=ScriptedLLM(scripted_dfs))
    o = m.predict(SAMPLES[0], LIB)
    assert [(n["depth"], n["action"], n.get("tool"), n["status"]) for n in o.trace["nodes"]] == [
        (0, "call", "finance.stock", "called"), (1, "give_up", None, "gave_up"), (0, "call", "finance.convert", "called"), (1, "finish", None, "finished")]
    assert o.trace["backtracks"] == 1 and o.trace["give_ups"] == 1 and o.trace["finished"] and o.llm_calls == 4
    assert o.prediction["ranking"] == ["finance.convert", "finance.stock"] and o.trace["confirmed"] == ["finance.convert"]
    # the observation is simulated from the tool's output schema and shown in the next prompt
    assert '-> {"result":"<What the tool returns>"}' in m.client.calls[1][0][-1]["content"]
    # the diversity prompt at the second try lists the action that failed there
    assert 'call finance.stock with {"ticker": "EUR"}' in m.client.calls[2][0][-1]["content"]
    # the same search with a budget of 2 calls never reaches the converter: the record says so
    o = DFSDTSelector(search_queries=False, m=8, max_calls=2, client=ScriptedLLM(scripted_dfs)).predict(SAMPLES[0], LIB)
    assert o.trace["budget_exhausted"] and not o.trace["finished"] and o.fallback is None and o.prediction["ranking"] == ["finance.stock"]


def test_dfsdt_a_perfect_model_makes_no_backtrack():
    def perfect(messages, schema):
        u = messages[-1]["content"]
        if "call travel.hotel" in u: return {"action": "finish"}
        if "call travel.flight" in u: return {"action": "call", "tool": "travel.hotel", "arguments": {"city": "Denver"}}
        return {"action": "call", "tool": "travel.flight", "arguments": {"origin": "BOS", "destination": "DEN", "date": "May 3"}}
    o = DFSDTSelector(search_queries=False, m=8, client=ScriptedLLM(perfect)).predict(SAMPLES[2], LIB)
    assert o.prediction["ranking"] == ["travel.flight", "travel.hotel"] and o.llm_calls == 3
    assert (o.trace["backtracks"], o.trace["give_ups"], o.trace["unparsed"], o.trace["depth_limits"]) == (0, 0, 0, 0)


def test_dfsdt_a_chain_at_max_depth_can_only_finish_or_give_up():
    seen = []
    def model(messages, schema):
        seen.append(schema["properties"]["action"]["enum"])
        if "call" not in seen[-1]: return {"action": "finish"}
        return {"action": "call", "tool": "travel.flight" if "1. call" not in messages[-1]["content"] else "travel.hotel", "arguments": {}}
    o = DFSDTSelector(search_queries=False, m=8, max_depth=2, client=ScriptedLLM(model)).predict(SAMPLES[2], LIB)
    assert seen == [["call", "finish", "give_up"]] * 2 + [["finish", "give_up"]]
    assert o.trace["finished"] and o.trace["depth_limits"] == 1 and o.prediction["ranking"] == ["travel.flight", "travel.hotel"]


from conftest import real_server_mark

llm = real_server_mark()


@llm
@pytest.mark.parametrize("mid", LLM)
def test_llm_methods_against_real_server(mid):
    m = get_method(mid)
    outs = m.predict_batch(SAMPLES[:2], [LIB] * 2)
    for o in outs:
        assert o.error is None or not o.transport_error, o.error
        assert o.llm_calls >= 1 and o.parse_status in ("strict", "fenced", "lenient", "failed")
        assert o.prompt_tokens > 0 or o.cached_calls > 0
        if o.prediction: assert set(o.prediction["ranking"]) <= set(LIB.ids)
