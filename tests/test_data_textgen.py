"""The LLM text pipeline (sage_bench.data.textgen): oracle and unit tests with the scripted LLM, byte-identical replay
without an LLM, resumption after a kill, the chunked cache; one real-server test (marked llm) that paraphrases 5 specs."""
import json, os, re
from collections import Counter
import pytest
from sage_bench.data import textgen as TG
from sage_bench.testing import ScriptedLLM

TOOLS = [("weather_now", "Current weather for a city"), ("sms_send", "Send a text message to a phone number"),
         ("flight_search", "Find flights between two cities"), ("hotel_book", "Book a hotel room for some nights"),
         ("currency_convert", "Convert an amount between two currencies"), ("calendar_add", "Add an event to the calendar")]
T = [{"name": n, "description": d} for n, d in TOOLS]


def specs(n=12):
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append({"id": f"s{i}", "kind": "no_tool_turn", "tools": [], "distractors": T[:2], "variant": i})   # same prompt: vary the seed
        else:
            gold = [T[i % 6]] + ([T[(i + 2) % 6]] if i % 4 == 2 else [])
            out.append({"id": f"s{i}", "kind": ["selection_query", "tool_turn", "planning_request"][i % 4 % 3], "tools": gold,
                        "distractors": [t for t in T if t not in gold][:2], **({"seed": f"seed phrasing {i}"} if i % 2 else {})})
    return out


def _tools(text):
    return re.findall(r"^- ([^:\n]+): (.+)$", text, re.M)


def oracle(messages, schema, slip=False):
    "A perfect scripted LLM: the writer describes the gold tools, the verifier names the listed tools whose description it reads."
    user = messages[-1]["content"]
    if schema is not None:
        text = re.search(r"<<<(.*)>>>", user, re.S).group(1).lower()
        names = [n for n, d in _tools(user.split("Available tools:")[1]) if d.lower() in text]
        return {"needs_tool": bool(names), "tools": names}
    descs = [d.lower() for _, d in _tools(user.split("Tools:")[1])]
    if not descs: return "Thanks, that story made my day."
    return "Could you help me: " + "; and ".join(descs + (["send a text message to a phone number"] if slip else [])) + "?"


def test_oracle_accepts_everything_first_try(tmp_path):
    llm = ScriptedLLM(oracle)
    res = TG.TextGenerator(tmp_path / "c", llm, model="oracle").run(specs())
    rep = TG.acceptance_report(res)
    assert rep["acceptance_rate"] == 1.0 and rep["accepted_first_try"] == 12 and rep["dropped"] == 0
    assert set(rep["by_kind"]) == {"selection_query", "tool_turn", "planning_request", "no_tool_turn"}
    assert len(llm.calls) == 24                                   # one writer and one verifier request per spec
    assert all(r.text and "_" not in r.text for r in res)
    # the verifier is a different prompt, with a schema limited to the tools shown, gold ones not first by construction
    v = [c for c in llm.calls if c[1] is not None]
    assert len(v) == 12 and all(c[0][-1]["content"] != w[0][-1]["content"] for c, w in zip(v, [c for c in llm.calls if c[1] is None]))
    assert set(v[0][1]["properties"]["tools"]["items"]["enum"]) == {t["name"] for t in specs()[0]["tools"] + specs()[0]["distractors"]}


def test_verifier_rejections_regenerate_then_drop(tmp_path):
    seen = Counter()
    def slips_first(m, s):
        if s is None: seen[m[-1]["content"]] += 1
        return oracle(m, s, slip=s is None and seen[m[-1]["content"]] == 1 and "seed" not in m[-1]["content"])
    res = TG.TextGenerator(tmp_path / "a", ScriptedLLM(slips_first), model="slip").run(specs())
    by = {r.id: r for r in res}
    assert by["s0"].status == "accepted" and by["s0"].attempts == 2 and by["s0"].reasons[0].startswith("verifier names")
    # a writer that answers a no-tool spec with a tool request, and names tools verbatim elsewhere: dropped after 3 attempts
    def bad(m, s):
        if s is not None: return oracle(m, s)
        return "please run weather_now" if "Tools:\n(none)" not in m[-1]["content"] else "what is the current weather for a city?"
    sp = [specs()[0], specs()[3]]
    sp[1]["distractors"] = T[:1]
    res = TG.TextGenerator(tmp_path / "b", ScriptedLLM(bad), model="bad").run(sp)
    assert [r.status for r in res] == ["dropped", "dropped"] and all(r.attempts == 3 for r in res)
    assert res[0].reasons == ["names the tool weather_now"] * 3 and res[1].reasons == ["verifier says a tool is needed"] * 3
    rep = TG.acceptance_report(res)
    assert rep["acceptance_rate"] == 0 and rep["reasons"] == {"names a tool": 3, "verifier says a tool is needed": 3}


def test_replay_is_byte_identical_without_an_llm(tmp_path):
    gen = TG.TextGenerator(tmp_path / "cache", ScriptedLLM(oracle), model="oracle", max_attempts=3)
    a = TG.write_results(gen.run(specs()), tmp_path / "a.jsonl").read_bytes()
    gen.cache.compact()
    replay = TG.TextGenerator(tmp_path / "cache", client=None, model="oracle")
    b = TG.write_results(replay.run(specs()), tmp_path / "b.jsonl").read_bytes()
    assert a == b and replay.stats["cache_hits"] == 24 and replay.stats["llm_requests"] == 0
    with pytest.raises(TG.CacheMiss, match="'extra'"):
        replay.run(specs() + [{"id": "extra", "kind": "tool_turn", "tools": T[:1]}])
    with pytest.raises(TG.CacheMiss):
        TG.TextGenerator(tmp_path / "cache", client=None, model="another-model").run(specs()[:1])


def test_resume_after_kill(tmp_path):
    "A run killed mid-way (an exception after 9 replies; a torn last line) resumes: only the missing requests reach the LLM."
    n = Counter()
    def dies(m, s):
        n["calls"] += 1
        if n["calls"] > 9: raise KeyboardInterrupt
        return oracle(m, s)
    with pytest.raises(KeyboardInterrupt):
        TG.TextGenerator(tmp_path / "c", ScriptedLLM(dies), model="oracle", batch_size=4).run(specs())
    p = tmp_path / "c" / "pending.jsonl"
    assert len(p.read_text().splitlines()) == 8                   # two full batches of 4 were stored, the third died
    with open(p, "a") as f: f.write('{"key": "abc", "text": "half a li')       # kill -9 in the middle of a write
    cache = TG.TextCache(tmp_path / "c")
    assert len(cache) == 8 and cache.torn == 1
    llm = ScriptedLLM(oracle)
    res = TG.TextGenerator(cache, llm, model="oracle", batch_size=4).run(specs())
    assert len(llm.calls) == 24 - 8 and all(r.status == "accepted" for r in res)
    assert len(TG.TextCache(tmp_path / "c")) == len(cache) >= 23      # identical verifier prompts (no-tool turns) share an entry
    ref = TG.TextGenerator(tmp_path / "fresh", ScriptedLLM(oracle), model="oracle").run(specs())
    assert [r.to_dict() for r in res] == [r.to_dict() for r in ref]


def test_transport_failure_stops_and_keeps_replies(tmp_path):
    def down(m, s):
        if s is not None: raise ConnectionError("server gone")
        return oracle(m, s)
    with pytest.raises(RuntimeError, match="rerun resumes"):
        TG.TextGenerator(tmp_path / "c", ScriptedLLM(down), model="oracle").run(specs(3))
    assert len(TG.TextCache(tmp_path / "c")) == 3                 # the writer replies are kept


def test_chunks_are_sorted_stable_and_sealed(tmp_path):
    c = TG.TextCache(tmp_path / "c", chunk_size=4)
    for i in range(6): c.put({"key": TG.request_key("m", [{"role": "user", "content": str(i)}], {}), "text": str(i)})
    assert [p.name for p in c.compact()] == ["chunk-0000.jsonl", "chunk-0001.jsonl"]
    first = (tmp_path / "c/chunk-0000.jsonl").read_bytes()
    keys = [json.loads(x)["key"] for x in first.decode().splitlines()]
    assert keys == sorted(keys) and len(keys) == 4
    c2 = TG.TextCache(tmp_path / "c", chunk_size=4)
    for i in range(6, 9): c2.put({"key": TG.request_key("m", [{"role": "user", "content": str(i)}], {}), "text": str(i)})
    assert [p.name for p in c2.compact()] == ["chunk-0001.jsonl", "chunk-0002.jsonl"]   # the full chunk 0 is not rewritten
    assert (tmp_path / "c/chunk-0000.jsonl").read_bytes() == first
    assert [len(x) for x in TG.TextCache(tmp_path / "c", chunk_size=4).chunks] == [4, 4, 1]
    (tmp_path / "c/chunk-0001.jsonl").write_text('{"key": "x"}\nnot json\n{"key": "y"}\n')
    with pytest.raises(ValueError, match=r"chunk-0001.jsonl: line 2"):
        TG.TextCache(tmp_path / "c")


def test_bad_specs_are_named(tmp_path):
    for bad, msg in [({"kind": "tool_turn"}, "string `id`"), ({"id": "x", "kind": "poem"}, "'x'.*kind"),
                     ({"id": "x", "kind": "no_tool_turn", "tools": T[:1]}, "'x'.*no tools"),
                     ({"id": "x", "kind": "tool_turn", "tools": [{"name": "a"}]}, "'x'.*description")]:
        with pytest.raises(ValueError, match=msg): TG.check_spec(bad)
    with pytest.raises(ValueError, match="unique"):
        TG.TextGenerator(tmp_path / "c", ScriptedLLM(oracle), model="m").run([specs()[0], specs()[0]])


@pytest.mark.llm
def test_real_llm_paraphrases_five_specs(tmp_path, llm_url):
    """A real local server (SAGE_BENCH_TEST_LLM_PORT names its port) writes and verifies 5 paraphrases; the acceptance
    is reported, not asserted (a 0.5B model's verdicts are what they are); the plumbing is: every spec got an outcome,
    an accepted text passed the verifier and names no tool, and the replay from the cache alone gives the same bytes."""
    from sage_bench.llm import LLMClient
    seeds = ["Will I need an umbrella in Oslo this afternoon?", "Text my brother that I will be late",
             "Find me a way to fly from Lisbon to Rome next Friday", "How much is 250 dollars in euros?",
             "Thanks, that was a really helpful explanation!"]
    sp = [{"id": f"r{i}", "kind": "no_tool_turn" if i == 4 else "selection_query", "seed": s,
           "tools": [] if i == 4 else [T[[0, 1, 2, 4][i]]], "distractors": [T[5], T[3]]} for i, s in enumerate(seeds)]
    client = LLMClient(llm_url, cache=False, timeout_s=300, max_tokens=96)
    gen = TG.TextGenerator(tmp_path / "cache", client, model=os.environ.get("SAGE_BENCH_TEST_LLM_MODEL", "local"), max_attempts=2)
    res = gen.run(sp)
    rep = TG.acceptance_report(res)
    print(json.dumps({"acceptance": {k: rep[k] for k in ("specs", "accepted", "acceptance_rate", "accepted_first_try", "attempts", "reasons")},
                      "texts": [(r.id, r.status, r.text) for r in res], "llm_requests": gen.stats["llm_requests"]}, indent=1))
    assert len(res) == 5 and gen.stats["llm_requests"] >= 10
    assert all((r.text is not None) == (r.status == "accepted") for r in res)
    a = TG.write_results(res, tmp_path / "a.jsonl").read_bytes()
    b = TG.write_results(TG.TextGenerator(tmp_path / "cache", None, model=gen.model, max_attempts=2).run(sp), tmp_path / "b.jsonl").read_bytes()
    assert a == b


# --- the paraphrase hook of a data set generator, and the sage v2 run (issue 15, item 5) ---

LIB = {f"t.{n}": d for n, d in TOOLS}


def test_keep_values_and_prechecks():
    assert TG.keep_values("let APT-2B to omar@example.com until August 31", {"unit": "APT-2B", "who": "omar@example.com"}) == \
        ["APT-2B", "omar@example.com", "31", "august"]
    s = {"id": "p", "kind": "planning_request", "tools": T[:2], "seed": "Sort out Kyoto", "keep": ["Kyoto"]}
    assert TG.precheck(s, "Get my Kyoto trip in order") is None
    assert TG.precheck(s, "Get my trip in order") == "drops 'Kyoto'"
    assert TG.precheck(s, "Find a Kyoto flight and then book a hotel") == "lists steps"
    assert TG.precheck({**s, "seed": "fly to Kyoto, then a hotel"}, "Fly to Kyoto and then book a hotel") is None  # the seed lists them too
    assert TG.acceptance_report([TG.TextResult("a", "planning_request", None, "dropped", 1, ["drops 'Kyoto'"])])["reasons"] == {"drops a value": 1}


def test_hook_spec_shapes():
    sel = TG.hook_spec({"challenge": "tool_selection", "tools": ["t.weather_now"], "arguments": {"city": "Oslo"}},
                       "Is it raining in Oslo right now?", LIB, {"t.weather_now": ["t.sms_send"]}, n_distractors=3)
    assert sel["kind"] == "selection_query" and [t["name"] for t in sel["tools"]] == ["t.weather_now"] and sel["keep"] == ["Oslo"]
    assert len(sel["distractors"]) == 3 and not {"t.weather_now", "t.sms_send"} & {t["name"] for t in sel["distractors"]}
    assert sel == TG.hook_spec({"challenge": "tool_selection", "tools": ["t.weather_now"], "arguments": {"city": "Oslo"}},
                               "Is it raining in Oslo right now?", LIB, {"t.weather_now": ["t.sms_send"]}, n_distractors=3)
    plan = TG.hook_spec({"challenge": "planning", "goal": "g", "tools": ["t.flight_search", "t.hotel_book", "t.flight_search"],
                         "arguments": {}}, "Get me to Rome", LIB)
    assert plan["kind"] == "planning_request" and [t["name"] for t in plan["tools"]] == ["t.flight_search", "t.hotel_book"]
    tim = TG.hook_spec({"challenge": "timing", "kind": "tool", "call_tool": True, "context": [], "tools": ["t.sms_send"]}, "tell Ann", LIB)
    assert tim["kind"] == "tool_turn" and TG.check_spec(tim)
    assert TG.hook_spec({"challenge": "timing", "kind": "tool", "call_tool": True, "context": []}, "tell Ann", LIB) is None
    no = TG.hook_spec({"challenge": "timing", "kind": "opinion", "call_tool": False, "context": []}, "Is jazz better than rock?", LIB)
    assert no["kind"] == "no_tool_turn" and no["tools"] == [] and no["distractors"] and sel["id"] != no["id"]


def _seed_oracle(truth):
    "A perfect LLM for hook specs: the writer returns the seed reworded by a prefix; the verifier reads the truth table."
    def reply(m, s):
        user = m[-1]["content"]
        if s is None:
            seed = re.search(r"^Message: (.*)$", user, re.M).group(1)
            return "Please, " + seed[:1].lower() + seed[1:]
        text = re.search(r"<<<(.*)>>>", user, re.S).group(1)
        gold = truth.get(text[len("Please, "):].lower(), [])       # a text it was not told about: no tool (a rejection)
        return {"needs_tool": bool(gold), "tools": gold}
    return reply


def test_text_paraphrase_oracle_and_replay(tmp_path):
    calls = [({"challenge": "tool_selection", "tools": ["t.weather_now"], "arguments": {"city": "Oslo"}}, "Is it raining in Oslo?"),
             ({"challenge": "planning", "goal": "g", "tools": ["t.flight_search", "t.hotel_book"], "arguments": {}}, "Get me to Rome in May"),
             ({"challenge": "timing", "kind": "opinion", "call_tool": False, "context": []}, "Is jazz better than rock?"),
             ({"challenge": "timing", "kind": "tool", "call_tool": True, "context": []}, "Text Ann")]             # no gold tool: seed kept
    truth = {seed.lower(): list(dict.fromkeys(spec.get("tools", []))) if spec.get("call_tool", True) else [] for spec, seed in calls}
    hook = TG.TextParaphrase(TG.TextGenerator(tmp_path / "c", ScriptedLLM(_seed_oracle(truth)), model="oracle"), LIB)
    out = [hook(*c) for c in calls]
    assert out[:3] == ["Please, " + seed[:1].lower() + seed[1:] for _, seed in calls[:3]] and out[3] == "Text Ann"
    assert dict(hook.counts) == {"accepted": 3, "unverifiable": 1}
    replay = TG.TextParaphrase(TG.TextGenerator(tmp_path / "c", None, model="oracle"), LIB)
    assert [replay(*c) for c in calls] == out
    assert replay({"challenge": "tool_selection", "tools": ["t.sms_send"], "arguments": {}}, "Text Bob") == "Text Bob"
    assert replay.counts["cache_miss"] == 1


@pytest.mark.slow
def test_v2_oracle_run_and_byte_identical_regeneration(tmp_path):
    """Over every text of sage v2: a perfect scripted LLM through the hook is accepted nearly always (what fails is a seed
    that names its tool or whose rewording drops nothing but still trips a precheck); write_sage_v2 with the LLM and
    with the cache alone (no LLM) writes the same bytes; the script's run writes the acceptance report."""
    import importlib.util
    from pathlib import Path
    from sage_bench.data.sage_v2 import write_sage_v2
    specs, left = TG.v2_text_specs()
    assert [sp for sp, _ in specs] == sorted((sp for sp, _ in specs), key=TG.V2_SPLIT_ORDER.index)    # test, dev, train
    assert len(specs) > 2000 and left["duplicate"] < 50
    truth = {s["seed"].lower(): [t["name"] for t in s["tools"]] for _, s in specs}
    llm = ScriptedLLM(_seed_oracle(truth))
    path = Path(__file__).parents[1] / "scripts" / "sage_v2_text.py"
    mod = importlib.util.module_from_spec(spec := importlib.util.spec_from_file_location("sage_v2_text", path))
    spec.loader.exec_module(mod)
    rep = mod.run(None, tmp_path / "tg", batch=64, client=llm, log=lambda *a: None, specs=specs)
    print(json.dumps({k: rep[k] for k in ("specs", "accepted", "acceptance_rate", "accepted_first_try", "reasons")}))
    assert rep["specs"] == len(specs) and rep["acceptance_rate"] >= 0.95, rep["reasons"]
    assert set(rep["by_split"]) == {"test", "dev", "train"} and rep["run"]["fresh_llm_requests"] == len(llm.calls)
    assert json.loads((tmp_path / "tg" / "acceptance.json").read_text())["accepted"] == rep["accepted"]
    a = write_sage_v2(tmp_path / "a", paraphrase=TG.v2_paraphrase(llm, cache=tmp_path / "tg" / "cache", model="qwen2.5-coder-1.5b"))
    b = write_sage_v2(tmp_path / "b", paraphrase=TG.v2_paraphrase(None, cache=tmp_path / "tg" / "cache"))
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
    assert "Please, " in (b / "samples.jsonl").read_text()


def test_script_survives_a_server_outage(tmp_path):
    "The run waits and retries when replies stop coming, resumes from the cache, and ends with the results of a clean run."
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[1] / "scripts" / "sage_v2_text.py"
    mod = importlib.util.module_from_spec(spec := importlib.util.spec_from_file_location("sage_v2_text", path))
    spec.loader.exec_module(mod)
    n = Counter()
    def flaky(m, s):
        n["calls"] += 1
        if 5 <= n["calls"] <= 7: raise ConnectionError("server stopped")
        return oracle(m, s)
    sp = [("test", s) for s in specs(8)]
    logs = []
    rep = mod.run(None, tmp_path / "a", batch=3, client=ScriptedLLM(flaky), retry_s=0, log=logs.append, specs=sp, model="oracle")
    ref = mod.run(None, tmp_path / "b", batch=3, client=ScriptedLLM(oracle), retry_s=0, log=lambda *a: None, specs=sp, model="oracle")
    assert any("retrying" in x for x in logs) and rep["accepted"] == ref["accepted"] == 8
    assert (tmp_path / "a/results.jsonl").read_bytes() == (tmp_path / "b/results.jsonl").read_bytes()
    assert list((tmp_path / "a/cache").glob("chunk-*.jsonl")) and not (tmp_path / "a/cache/pending.jsonl").exists()
    replay = mod.run(None, tmp_path / "a", batch=3, log=lambda *a: None, specs=sp, model="oracle")     # no LLM: the cache alone
    assert replay["accepted"] == 8 and replay["run"]["fresh_llm_requests"] == 0


def test_script_collects_specs_once_and_retries(tmp_path, monkeypatch):
    "The specs are collected again after a failure (material mid-edit), saved, and read back on a restart."
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[1] / "scripts" / "sage_v2_text.py"
    mod = importlib.util.module_from_spec(spec := importlib.util.spec_from_file_location("sage_v2_text", path))
    spec.loader.exec_module(mod)
    n = Counter()
    def collect():
        n["calls"] += 1
        if n["calls"] == 1: raise ValueError("equivalents.yaml:4: mid-edit")
        return [("test", s) for s in specs(4)], Counter({"unverifiable": 2})
    monkeypatch.setattr(TG, "v2_text_specs", collect)
    f, logs = tmp_path / "specs.json", []
    rep = mod.run(None, tmp_path / "a", batch=2, client=ScriptedLLM(oracle), retry_s=0, log=logs.append, specs_file=f, model="oracle")
    assert n["calls"] == 2 and any("mid-edit" in x for x in logs) and rep["accepted"] == 4 and rep["run"]["left_out"] == {"unverifiable": 2}
    again = mod.run(None, tmp_path / "a", batch=2, retry_s=0, log=lambda *a: None, specs_file=f, model="oracle")   # replay, from the file
    assert n["calls"] == 2 and again["accepted"] == 4
