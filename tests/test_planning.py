"Tests of the five planners (sage_bench.methods.planning)."
import pytest
from sage_bench.core import PlanningSample, PlanStep, Tool, ToolLibrary
from sage_bench.methods.base import blind, Output
from sage_bench.testing import ScriptedLLM
from sage_bench.methods.planning import (SimplePlanner, LLMPlanner, ReActPlanner, ToTPlanner,
                                         split_subgoals, tool_index, candidate_tools, candidate_recall, candidate_coverage,
                                         simulate_observation, PLAN_PROMPTS)
from sage_bench.registry import get_method, lookup
from sage_bench.retrieval import Retriever

from conftest import real_server_mark

needs_server = real_server_mark()


def T(i, desc, params=(), cat="", returns=None):
    return Tool(i, i, desc, {"type": "object", "properties": {p: {"type": "string"} for p in params}, "required": list(params[:1])}, cat, returns=returns)


LIB = ToolLibrary([
    T("search_flights", "Search available flights between two cities on a date", ("origin", "destination", "date"), "travel"),
    T("book_flight", "Book a flight ticket for a passenger", ("flight_id", "passenger"), "travel"),
    T("book_hotel", "Reserve a hotel room in a city for given dates", ("city", "check_in"), "travel"),
    T("get_weather", "Get the weather forecast for a city", ("city", "date"), "weather", {"type": "object", "properties": {"temp_c": {"type": "number"}}}),
    T("send_email", "Send an email message to a recipient", ("to", "subject", "body"), "communication"),
    T("translate_text", "Translate text into another language", ("text", "target_language"), "language"),
    T("summarize_text", "Summarize a long text into a short summary", ("text",), "language"),
    T("convert_currency", "Convert an amount of money from one currency to another", ("amount", "from", "to"), "finance"),
    T("create_calendar_event", "Create an event in the user's calendar", ("title", "start"), "productivity"),
    T("get_stock_price", "Get the latest stock price for a ticker symbol", ("symbol",), "finance"),
])


def ps(i, req, steps, split="test"):
    return PlanningSample(id=f"p{i}", dataset="fx", split=split, request=req, steps=[PlanStep(s) for s in steps])


FIX = [
    ps(1, "Check the weather forecast in Rome, then book a hotel room there and finally email the details to my wife",
       ["get_weather", "book_hotel", "send_email"]),
    ps(2, "Translate this paragraph into Spanish and then summarize it", ["translate_text", "summarize_text"]),
    ps(3, "Get the stock price of ACME, convert it to euros, after that add a calendar event for the earnings call",
       ["get_stock_price", "convert_currency", "create_calendar_event"]),
    ps(4, "Search flights from Paris to Oslo on May 3", ["search_flights"]),
]
TRAIN = [ps(90, "a long plan", ["get_weather"] * 8, "train")]


def well_formed(o: Output, lib=LIB):
    assert isinstance(o, Output)
    if o.prediction is None:
        assert o.error
        return
    steps = o.prediction["steps"]
    assert isinstance(steps, list) and steps and all(isinstance(s, str) for s in steps)
    assert set(o.prediction) <= {"steps", "arguments"}


def test_registered():
    for mid, llm in [("planner.simple", False), ("planner.hierarchical", False), ("planner.llm_based", True), ("planner.react", True), ("planner.tot", True)]:
        e = lookup("method", mid)
        assert e.challenge == "planning" and e.needs_llm is llm


@pytest.mark.parametrize("req,want", [
    ("Find flights to Rome, then book the cheapest one and email me the receipt", ["Find flights to Rome", "book the cheapest one", "email me the receipt"]),
    ("Get the weather in Oslo; translate it to French; finally send it to Ann", ["Get the weather in Oslo", "translate it to French", "send it to Ann"]),
    ("1) search hotels in Lima 2) book the best one 3) add it to my calendar", ["search hotels in Lima", "book the best one", "add it to my calendar"]),
    ("Download the report. After that, summarize it. Lastly, email the summary to Bob", ["Download the report", "summarize it", "email the summary to Bob"]),
    ("Compare prices in Paris, London and Rome", ["Compare prices in Paris, London and Rome"]),
])
def test_split_subgoals(req, want):
    assert split_subgoals(req) == want


@pytest.mark.parametrize("retriever", ["bm25", "embedding"])
def test_simple_three_part_request_in_order(retriever):
    o = SimplePlanner(retriever=retriever).predict(blind(FIX[0]), LIB)
    assert o.prediction["steps"] == ["get_weather", "book_hotel", "send_email"]
    assert [g["subgoal"] for g in o.trace["subgoals"]] == split_subgoals(FIX[0].request)


@pytest.mark.parametrize("mid", ["planner.simple", "planner.hierarchical"])
def test_retrieval_planners_on_fixture(mid):
    m = get_method(mid, retriever="bm25")
    outs = m.predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))
    for o in outs: well_formed(o)
    exact = sum(o.prediction["steps"] == s.tool_sequence for o, s in zip(outs, FIX))
    assert exact >= 3, [(s.request, o.prediction) for o, s in zip(outs, FIX)]


def test_retrieval_planners_with_real_embedder():
    for mid in ("planner.simple", "planner.hierarchical"):
        for r in ("embedding", "hybrid"):  # embedding is the default
            outs = get_method(mid, retriever=r).predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))
            for o in outs: well_formed(o)
            assert outs[0].prediction["steps"][0] == "get_weather", (mid, r, outs[0])


def test_index_cached_by_fingerprint():
    a = tool_index(LIB, "bm25")
    assert tool_index(ToolLibrary(list(LIB), "same tools, other name"), "bm25") is a


@pytest.mark.parametrize("kind", ["bm25", "hybrid"])
def test_candidates_keep_every_subgoal(kind):
    ids = candidate_tools(FIX[2].request, LIB, Retriever(kind), 4)
    assert len(ids) == 4 and {"get_stock_price", "convert_currency", "create_calendar_event"} <= set(ids)


def test_simulated_observation_from_schema():
    o = simulate_observation(LIB["get_weather"], {"city": "Rome", "junk": 1})
    assert o["result"] == {"temp_c": 1.0} and o["arguments"] == {"city": "Rome"}
    assert "missing_arguments" in simulate_observation(LIB["send_email"], {})


def gold_llm(gold, finish=True):
    "A scripted LLM that answers every planner's calls with the gold plan."
    def reply(msgs, schema):
        props = schema["properties"]
        txt = msgs[-1]["content"]
        if "queries" in props: return {"queries": [LIB[t].description for t in gold]}
        if "steps" in props: return {"steps": gold}
        if "action" in props:
            n = sum(1 for m in msgs if m["role"] == "assistant")
            return {"thought": "t", "action": "call", "tool": gold[n], "arguments": {}} if n < len(gold) else {"thought": "t", "action": "finish"}
        if "next" in props:
            sofar = txt.split("Plan so far: ")[1].split("\n")[0]
            n = 0 if sofar == "(nothing yet)" else len(sofar.split(" -> "))
            return {"next": [gold[n % len(gold)] if (n < len(gold) or not finish) else "FINISH"]}
        if "best" in props:
            lines = [l.split(". ", 1)[1] for l in txt.split("Candidate plans:\n")[1].split("\n\n")[0].split("\n")]
            def good(line):
                plan, tag = line.split("  [")[0].split(" -> "), line.split("  [")[1]
                if tag.startswith("complete"): return finish and plan == gold
                return plan == [gold[i % len(gold)] for i in range(len(plan))]
            return {"best": next((i + 1 for i, l in enumerate(lines) if good(l)), 1)}
        return {"value": "sure"}
    return ScriptedLLM(reply)


@pytest.mark.parametrize("cls", [LLMPlanner, ReActPlanner, ToTPlanner])
def test_llm_planners_well_formed_with_scripted_llm(cls):
    s = FIX[0]
    fake = gold_llm(s.tool_sequence)
    o = cls(client=fake, n_candidates=6, retriever="bm25").predict_batch([blind(s)], [LIB])[0]
    well_formed(o)
    assert o.prediction["steps"] == s.tool_sequence and o.error is None
    assert o.trace["n_candidates"] == 6 and len(o.trace["candidates"]) == 6 and o.trace["n_tools"] == len(LIB)
    assert set(o.trace["candidates"]) <= set(o.trace["tools_seen"]) and o.trace["n_tools_seen"] == len(o.trace["tools_seen"])
    assert o.llm_calls == len(fake.calls) and o.prompt_tokens == 10 * len(fake.calls) and o.raw_output
    # every schema constrains tool ids to the tools the LLM was shown
    for _, schema in fake.calls:
        p = schema["properties"]
        enum = (p.get("steps") or p.get("next") or {}).get("items", {}).get("enum") or (p.get("tool") or {}).get("enum")
        if enum is not None: assert set(enum) - {"FINISH"} <= set(o.trace["tools_seen"])


@pytest.mark.parametrize("cls", [LLMPlanner, ReActPlanner, ToTPlanner])
def test_llm_planners_fail_loudly(cls):
    def down(m, s): raise ConnectionError("server down")
    o = cls(client=ScriptedLLM(down), retriever="bm25").predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.prediction is None and "server down" in o.error and o.fallback is None and o.transport_error
    o = cls(client=ScriptedLLM(lambda m, s: "no json here"), retriever="bm25").predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.prediction is None and o.error and o.parse_status == "failed" and o.fallback is None and not o.transport_error


def test_react_obeys_step_limit():
    # a new call every turn (a repeated identical call is refused, see test_react_refuses_a_repeated_call)
    loop = ScriptedLLM(lambda m, s: {"thought": "again", "action": "call", "tool": "get_weather", "arguments": {"city": f"Rome {len(m)}"}})
    for k in (1, 3, 5):
        o = ReActPlanner(client=loop, max_steps=k, retriever="bm25").predict_batch([blind(FIX[0])], [LIB])[0]
        assert len(o.prediction["steps"]) == k and o.trace["stopped"] == "step_limit"
        assert len([t for t in o.trace["transcript"] if "observation" in t]) == k


def test_react_refuses_a_repeated_call():
    same = ScriptedLLM(lambda m, s: {"thought": "again", "action": "call", "tool": "get_weather", "arguments": {"city": "Rome"}})
    o = ReActPlanner(client=same, max_invalid=2, retriever="bm25").predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.prediction == {"steps": ["get_weather"]} and o.trace["stopped"] == "invalid_actions" and o.llm_calls == 3
    assert [t.get("invalid") for t in o.trace["transcript"]] == [None, "repeated call", "repeated call"]

def test_react_search_action_returns_retrieval_and_call_returns_simulated_output():
    acts = iter([{"action": "search_tools", "query": "weather forecast for a city"}, {"action": "call", "tool": "get_weather", "arguments": {"city": "Rome"}},
                 {"action": "finish"}])
    fake = ScriptedLLM(lambda m, s: {"thought": "t", **next(acts)})
    o = ReActPlanner(client=fake, n_candidates=1, retriever="bm25").predict_batch([blind(FIX[3])], [LIB])[0]
    assert o.prediction == {"steps": ["get_weather"]} and o.trace["stopped"] == "finish"
    search, call = o.trace["transcript"][:2]
    assert search["found"][0] == "get_weather" and "get_weather" in fake.calls[1][1]["properties"]["tool"]["enum"]
    assert "- get_weather" in fake.calls[1][0][-1]["content"].split("found tools")[1]
    assert call["observation"] == simulate_observation(LIB["get_weather"], {"city": "Rome"}) and call["observation"]["result"] == {"temp_c": 1.0}


def test_react_late_failure_keeps_steps_and_records_it():
    def late(msgs, schema):
        n = sum(1 for m in msgs if m["role"] == "assistant")
        if n == 2: raise ConnectionError("server down")
        return {"thought": "t", "action": "call", "tool": ["get_weather", "book_hotel"][n], "arguments": {}}
    o = ReActPlanner(client=ScriptedLLM(late), retriever="bm25").predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.prediction == {"steps": ["get_weather", "book_hotel"]} and "server down" in o.error and o.transport_error
    assert o.trace["stopped"] == "llm_failure"


def test_tot_late_failure_keeps_complete_plans():
    gold = ["get_weather", "book_hotel"]
    base = gold_llm(gold).reply
    def reply(msgs, schema):
        txt = msgs[-1]["content"]
        if "value" in schema["properties"]:   # the complete gold plan is 'likely', an open prefix 'sure': the search goes on
            line = txt.split("Plan: ")[1].split("\n")[0]
            return {"value": ("likely" if line.startswith("get_weather -> book_hotel  [") else "impossible") if "[complete]" in line else "sure"}
        if "Plan so far: get_weather -> book_hotel -> send_email" in txt: raise ConnectionError("server down")
        if "Plan so far: get_weather -> book_hotel\n" in txt: return {"next": ["FINISH", "send_email"]}
        return base(msgs, schema)
    o = ToTPlanner(client=ScriptedLLM(reply), evaluate="value", breadth=2, retriever="bm25").predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.prediction == {"steps": gold} and "server down" in o.error and o.transport_error


def test_tot_reaches_max_depth_and_fit_changes_no_setting():
    m = ToTPlanner(client=gold_llm(["get_weather", "book_hotel"], finish=False), breadth=2, max_depth=8, retriever="bm25")
    before = m.describe()
    with pytest.warns(UserWarning, match="longest training plan has 9 steps"):
        m.fit([ps(91, "a longer plan", ["get_weather"] * 9, "train")])
    m.fit(TRAIN)
    assert m.describe() == before and m.config["max_depth"] == 8
    o = m.predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.trace["depth_reached"] == 8 and len(o.prediction["steps"]) == 8 and o.trace["stopped"] == "depth_limit"
    assert len(o.trace["tree"]) > 8
    # the defaults reach the longest sage plan without fit
    from sage_bench.registry import get_dataset
    longest = max(len(s.steps) for s in get_dataset("sage").select("planning"))
    assert ToTPlanner().config["max_depth"] >= longest and ReActPlanner().config["max_steps"] >= longest and LLMPlanner().config["max_steps"] >= longest


def test_samples_run_concurrently_and_keep_order():
    outs = ReActPlanner(client=gold_llm(["send_email"]), retriever="bm25").predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))
    assert len(outs) == len(FIX) and all(o.prediction == {"steps": ["send_email"]} for o in outs)


def test_prompt_variants_recorded():
    for p in PLAN_PROMPTS:
        for cls in (LLMPlanner, ReActPlanner, ToTPlanner):
            assert cls(prompt=p, client=gold_llm(["send_email"])).describe()["config"]["prompt"] == p
            o = cls(prompt=p, client=gold_llm(["send_email"]), retriever="bm25").predict_batch([blind(FIX[3])], [LIB])[0]
            assert o.prediction == {"steps": ["send_email"]}, (cls, p, o.error)
    with pytest.raises(ValueError): LLMPlanner(prompt="nope")
    with pytest.raises(ValueError): LLMPlanner(retriever="nope")


def test_candidate_recall_on_sage_dev():
    """Every LLM planner can show the LLM at least 90% of the gold tools of the sage dev plans: its retrieval stage plus
    what the LLM's own searches find (the query step of llm_based and tot: `per_query` tools per query; ReAct's
    search_tools action: `search_k` per search), with a searcher that describes each needed tool as the library does.
    Retrieval alone (before any LLM call) is printed beside it: on v2's goal-level requests it falls well short."""
    from sage_bench.registry import get_dataset
    ds = get_dataset("sage")
    dev = ds.select("planning", "dev")
    for mid in ("planner.llm_based", "planner.react", "planner.tot"):
        m = get_method(mid)
        alone = candidate_coverage(m, ds, "dev")
        k = m.config["search_k"] if mid == "planner.react" else m.config["per_query"]
        rec = []
        for smp in dev:
            lib = ds.candidates(smp)
            seen = set(m.candidates(blind(smp), lib))
            for found in m.retriever.rank_many([ds.tools[t].description for t in smp.tool_sequence], [lib] * len(smp.tool_sequence), k):
                seen |= set(found)
            rec.append(candidate_recall(list(seen), smp.tool_sequence))
        recall = sum(rec) / len(rec)
        print(f"{mid}: retrieval alone {alone['recall']:.3f}, with the searches {recall:.3f} (n={len(rec)})")
        assert alone["n"] == len(dev) and recall >= 0.9, (mid, recall, alone)
    assert candidate_recall(["a", "c"], ["a", "b", "a"]) == 0.5


@needs_server
@pytest.mark.parametrize("mid,cfg,n", [("planner.llm_based", {}, 2), ("planner.react", {"max_steps": 3}, 1),
                                        ("planner.tot", {"max_depth": 2, "breadth": 1, "n_propose": 2}, 1)])
def test_llm_planners_real_server(mid, cfg, n):
    "Small settings: a CPU server takes seconds per call (responses are cached on disk, so reruns are quick)."
    m = get_method(mid, n_candidates=8, **cfg)
    outs = m.predict_batch([blind(s) for s in FIX[1:1 + n]], [LIB] * n)
    for o in outs: well_formed(o)
    assert all(o.llm_calls + o.cached_calls >= 1 for o in outs)          # every sample went through the real server
    ok = [o for o in outs if o.prediction is not None]
    assert all(set(o.prediction["steps"]) <= set(LIB.ids) for o in ok)
    # what a real model answers is its own: an agent may end without a plan (the 1.5B ReAct agent finishes this fixture
    # request without a call), which is a recorded failure with its reason, never a crash; reaching the top of the
    # scale is the oracle tests' job (tests/test_oracle_planning_timing.py)
    assert all(o.error for o in outs if o.prediction is None), [o.error for o in outs]
    if mid == "planner.llm_based": assert ok, [o.error for o in outs]   # one plan call per request: it plans them


def test_tot_drops_proposed_ids_it_never_showed():
    base = gold_llm(["send_email"]).reply
    def reply(msgs, schema):
        if "next" in schema["properties"] and "(nothing yet)" in msgs[-1]["content"]: return {"next": ["no_such_tool", "send_email"]}
        return base(msgs, schema)
    o = ToTPlanner(client=ScriptedLLM(reply), retriever="bm25").predict_batch([blind(FIX[3])], [LIB])[0]
    assert o.prediction == {"steps": ["send_email"]} and all("no_such_tool" not in n["plan"] for n in o.trace["tree"])
    o = ToTPlanner(client=ScriptedLLM(lambda m, s: base(m, s) if "next" not in s["properties"] else {"next": ["no_such_tool"]}),
                   retriever="bm25").predict_batch([blind(FIX[3])], [LIB])[0]
    assert o.prediction is None and o.error.startswith("invalid proposal") and o.parse_status == "failed"
