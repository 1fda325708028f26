"""LoRA SFT of a small LLM (sage_bench.training.llm_sft): the examples are the LLM methods' own requests with gold
answers in their schemas (fast); a tiny training run lowers the loss, the adapter converts with llama.cpp's converter
and llama-server serves it (marked slow and llm: the fast tier leaves it out)."""
import gc
import json
from pathlib import Path

import pytest

from sage_bench.methods.base import ToolRefs, blind, read_numbers
from sage_bench.registry import get_dataset
from sage_bench.training import llm_sft as L

SFT_PORT = 8933          # not the main server's 8901, nor llm_sft's default 8931


@pytest.fixture(scope="module")
def ds():
    return get_dataset("sage")


@pytest.fixture(scope="module")
def data(ds):
    return L.sft_examples(ds, per_challenge=3, seed=7)


def _schema_ok(value, schema) -> bool:
    "The answer has the schema's required keys, in its property order, nothing else, and only allowed enum values."
    props = schema["properties"]
    if list(value) != [k for k in props if k in value] or set(schema["required"]) - set(value) or set(value) - set(props):
        return False
    for k, v in value.items():
        p = props[k]
        if p.get("type") == "array":
            if not isinstance(v, list) or len(v) < p.get("minItems", 0) or len(v) > p.get("maxItems", len(v)): return False
            if "enum" in p["items"] and not set(v) <= set(p["items"]["enum"]): return False
        if p.get("type") == "boolean" and not isinstance(v, bool): return False
    return True


def test_examples_are_the_methods_requests(ds, data):
    from sage_bench.methods.timing import timing_messages, TIMING_SCHEMA
    from sage_bench.methods.selection import rerank_messages, _ranking_schema
    from sage_bench.methods.planning import query_messages, query_schema, tool_card
    ex = {e.id: e for e in data["examples"]}
    assert set(data["used"]) == set(L.SFT_METHODS) and all(data["used"].values())
    cfg = L.SFT_METHOD_CONFIG[True]
    n = {"timing": 0, "tool_selection": 0, "planning": 0}
    for s in ds.select(split="train"):
        e = ex.get(f"{s.id}#0")
        if e is None: continue
        n[s.challenge] += 1
        ans = json.loads(e.answer)
        assert _schema_ok(ans, e.schema), (e.id, e.answer)
        if s.challenge == "timing":
            assert e.messages == timing_messages(blind(s), ds.candidates(s), cfg["timing"]["prompt"]) and e.schema == TIMING_SCHEMA
            assert ans["call_tool"] is s.should_call_tool
        elif s.challenge == "tool_selection":      # quick path: refs="number", the tools named by the [n] before them
            nums = read_numbers(e.messages[-1]["content"], ds.tools.ids)
            cands = [nums[n] for n in e.schema["properties"]["ranking"]["items"]["enum"]]
            refs = ToolRefs(cands, cfg["tool_selection"]["refs"])
            assert len(cands) == cfg["tool_selection"]["m"] and refs.kind == "number"
            assert e.messages == rerank_messages(s.query, [ds.tools[c] for c in cands], cfg["tool_selection"]["max_desc"],
                                                 cfg["tool_selection"]["prompt"], refs=refs)
            assert e.schema == _ranking_schema(cands, len(cands), 1, refs=refs)
            assert [nums[n] for n in ans["ranking"]] == [t for t in s.relevant_tools if t in cands]
        else:
            assert e.messages == query_messages(s.request) and e.schema == query_schema(12)
            assert len(ans["queries"]) == len(s.tool_sequence)
            plan = ex.get(f"{s.id}#1")
            if plan is None: continue         # a gold tool was not among the candidates: the plan step is left out
            user = plan.messages[-1]["content"]
            nums = read_numbers(user, ds.tools.ids)
            ids = [nums[n] for n in plan.schema["properties"]["steps"]["items"]["enum"]]
            refs = ToolRefs(ids, cfg["planning"]["refs"])
            assert set(s.tool_sequence) <= set(ids)
            assert s.request in user and all("- " + refs.label(t) + tool_card(ds.tools[t], cfg["planning"]["desc_chars"])[2:] in user
                                             for t in ids)
            assert [nums[n] for n in json.loads(plan.answer)["steps"]] == s.tool_sequence
    # a selection sample whose gold tools the retriever's top m all missed has no answer within the schema: left out, counted
    assert n["timing"] == n["planning"] == 3 and n["tool_selection"] == data["used"]["tool_selection"]
    assert data["used"]["tool_selection"] + data["skipped"]["tool_selection"] == 3 and data["skipped"]["timing"] == 0


def test_examples_seeded_and_counted(ds, data):
    again = L.sft_examples(ds, per_challenge=3, seed=7)
    assert [e.id for e in again["examples"]] == [e.id for e in data["examples"]]
    assert sum(data["used"].values()) == len(data["examples"])
    full = L.sft_examples(ds, per_challenge=2, seed=7, quick=False)      # the full path: the methods' default prompts
    t = next(e for e in full["examples"] if e.challenge == "timing")
    assert t.messages[0]["role"] == "system"


def _installed(name):
    from sage_bench.llm_service import verify_model, LLMServiceError
    try: return verify_model(name)
    except LLMServiceError as e: pytest.skip(str(e))


def test_encoding_masks_the_prompt(data):
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer
    p = _installed("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    e = data["examples"][0]
    enc = L.encode_example(tok, e)
    k = enc.labels.count(-100)
    assert enc.labels[k:] == enc.input_ids[k:] and enc.n_answer == len(enc.input_ids) - k
    assert tok.decode(enc.input_ids[k:]).strip() == e.answer + "<|im_end|>"
    assert tok.decode(enc.input_ids[:k]) == tok.apply_chat_template(e.messages, add_generation_prompt=True, tokenize=False)
    assert L.encode_example(tok, e, max_len=k) is None


def test_trained_llm_is_one_method_for_three_challenges(tmp_path):
    from sage_bench.registry import lookup, get_method, method_ids
    e = lookup("method", "trained.llm")
    assert e.challenge == "all" and e.needs_llm and e.challenges == tuple(L.SFT_METHODS) and e.on_request
    # one entry listed under each challenge, but only when named: the lists runs over every method start from (5.2,
    # `sage-bench eval` without --methods) leave it out, so they never serve or train it
    assert all("trained.llm" in method_ids(ch, on_request=True) for ch in L.SFT_METHODS)
    assert "trained.llm" not in method_ids() and all("trained.llm" not in method_ids(ch) for ch in L.SFT_METHODS)
    llm = {"base_urls": "http://127.0.0.1:9/v1", "model": "x+lora-0"}
    for ch in L.SFT_METHODS:
        m = get_method("trained.llm", challenge=ch, llm=llm)
        assert m.challenge == ch and m.id == "trained.llm" and m.config["llm"] == llm and m.config["quick"] is True
        assert all(m.config[k] == v for k, v in L.SFT_METHOD_CONFIG[True][ch].items())      # the trained configuration
        m.fit([], None)                                # pointed at a server: nothing to train or serve
    assert L.trained_llm("timing", quick=False).config["prompt"] == "default"
    with pytest.raises(ValueError, match="challenge"): get_method("trained.llm")
    # no adapter trained yet: a clear error naming what to run, never a training started in fit
    with pytest.raises(FileNotFoundError, match="sage-bench train --quick --methods A_baseline --seed 42"):
        L.trained_llm("timing", output_dir=str(tmp_path)).fit([], None)
    L._pointer(tmp_path, True, 42, tmp_path / "x/sft_run.json")
    assert L.default_adapter(True, 42, tmp_path) == tmp_path / "x/sft_run.json"
    with pytest.raises(FileNotFoundError, match="full-seed42"): L.default_adapter(False, 42, tmp_path)


def test_trained_llm_serves_its_adapter_before_the_engine_asks_for_the_model(tmp_path, monkeypatch):
    """The engine reads the served model's name (`llm_model_of` -> `client`) before `fit`: the first use of the client
    serves the adapter, so trained.llm is never scored by whatever server the environment points at (CI found this)."""
    from sage_bench.engine import llm_model_of
    run = tmp_path / "sft_run.json"
    run.write_text(json.dumps({"lora_gguf": "/x/a.gguf", "base": "smollm2-135m", "examples": [1]}))
    served = []
    monkeypatch.setattr(L, "serve_run", lambda rec, port: served.append(port) or {"url": "http://127.0.0.1:9/v1", "client_model": "b+lora"})
    monkeypatch.setenv("SAGE_BENCH_LLM_URL", "http://127.0.0.1:8/v1")       # the base model's server: must not be used
    m = L.trained_llm("timing", adapter_run=str(run), port=8999)
    assert llm_model_of(m, timeout_s=0.1) == "b+lora" and served == [8999]     # the adapter's model, served once
    assert m.client.base_urls == ["http://127.0.0.1:9/v1"] and m.config["llm"]["model"] == "b+lora"
    m.fit([], None)
    assert served == [8999] and m.describe()["sft"]["lora_gguf"] == "/x/a.gguf"


def test_trained_llm_stops_the_server_it_started(tmp_path, monkeypatch):
    """The adapter server trained.llm serves is stopped when the engine's run ends, normally or on an error (the method is
    garbage-collected; `close` does it at once); a server that was running before is left alone; with two users of the
    server this process started, the last one stops it."""
    import gc
    from sage_bench.engine import evaluate
    from sage_bench.methods.timing import LLMTiming
    run = tmp_path / "sft_run.json"
    run.write_text(json.dumps({"lora_gguf": "/x/a.gguf", "base": "smollm2-135m"}))
    state = {"pid": 100, "up": False}
    stopped = []

    def serve(rec, port):
        info = {"url": "http://127.0.0.1:9/v1", "client_model": "b+lora", "pid": state["pid"], "already_running": state["up"]}
        state["up"] = True
        return info
    monkeypatch.setattr(L, "serve_run", serve)
    monkeypatch.setattr(L, "stop_served", lambda port=None: stopped.append(port) or state.update(up=False))
    make = lambda: L.trained_llm("timing", adapter_run=str(run), port=8999)        # noqa: E731
    m = make(); m.client
    assert stopped == [] and L._LEASES[8999]["users"] == 1
    m.close(); m.close()                                           # at once, once
    assert stopped == [8999] and 8999 not in L._LEASES and m.config["llm"] is None
    m.client; del m; gc.collect()                                  # a later use serves it again; garbage collection stops it
    assert stopped == [8999] * 2
    a, b = make(), make(); a.client; b.client                      # two users: the last one stops it
    del a; gc.collect()
    assert stopped == [8999] * 2
    del b; gc.collect()
    assert stopped == [8999] * 3
    state["up"] = True                                             # a server running before: not ours to stop
    m = make(); m.client; del m; gc.collect()
    assert stopped == [8999] * 3 and not L._LEASES
    state["up"] = False

    def fail(self, train, dataset=None): raise RuntimeError("fit failed")
    monkeypatch.setattr(LLMTiming, "fit", fail)                     # the engine's run fails after the server is up
    with pytest.raises(RuntimeError, match="fit failed"):
        evaluate(L.trained_llm("timing", adapter_run=str(run), port=8999), "sage", "test", samples=2, write=False, progress=False,
                 output_dir=tmp_path, experiment="test_stop", resume=False, replace_changed=True)
    gc.collect()
    assert stopped == [8999] * 4 and not L._LEASES


def test_trained_llm_oracle(ds, tmp_path):
    """A scripted perfect model (the gold answer of every request, in the method's schema) behind trained.llm, through the
    engine: timing is perfect, selection and planning reach the ceiling the retrieval stage leaves them."""
    from sage_bench.engine import choose_samples, evaluate
    from sage_bench.testing import ScriptedLLM
    n = 20
    for ch, k in (("timing", "accuracy"), ("tool_selection", "hit@5"), ("planning", "plan_success")):
        table, ceiling, teacher = {}, 0, L.sft_method(ch)
        chosen = choose_samples(ds.select(ch, "test"), n, 42)
        for s in chosen:
            calls = L.record_calls(teacher, s, ds.candidates(s), ds.tools)
            for msgs, schema, ans in calls: table[json.dumps(msgs)] = (ans, schema)
            ceiling += all(ans is not None for _, _, ans in calls)

        def reply(messages, schema):
            ans, sch = table[json.dumps(messages)]
            if ans is not None: return ans
            props = sch["properties"]                  # no gold answer fits: any valid answer (it cannot score)
            return {"ranking": props["ranking"]["items"]["enum"][:1]} if "ranking" in props else \
                   {"steps": props["steps"]["items"]["enum"][:1]}

        m = L.trained_llm(ch, client=ScriptedLLM(reply))
        r = evaluate(m, ds, "test", samples=n, seed=42, write=False, progress=False, name="oracle", output_dir=tmp_path,
                     experiment="test_oracle_trained_llm", resume=False, replace_changed=True)
        v = r.value(k)
        print(ch, k, v, "ceiling", ceiling / n)
        assert r.metrics["n"] == n and v >= ceiling / n - 1e-9 and v >= 0.5, (ch, v, ceiling)


def _tiny_lm():
    "A random two-layer llama (no download), the adapter on every layer: the training logic, not the model, is under test."
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     num_key_value_heads=2, max_position_embeddings=64))
    cfg = L.SFTConfig(quick=True, per_challenge=4, epochs=2, top_layers=0, lr=5e-2, accum=2, device="cpu", threads=1)
    return L.add_lora(m, cfg), cfg


def _enc(i: int, ch: str):
    import random as _r
    rng = _r.Random(i)
    p = [rng.randrange(3, 40) for _ in range(6)]
    a = [5 + i % 3, 7, 9]                                  # a learnable answer
    return L.Encoded(f"s{i}#0", ch, p + a, [-100] * len(p) + a)


def test_every_5_5_method_trains_from_the_same_adapter_and_records_its_checkpoint():
    from types import SimpleNamespace
    import numpy as np
    model, cfg = _tiny_lm()
    chs = ["timing", "tool_selection", "planning"] * 4
    enc = [_enc(i, c) for i, c in enumerate(chs)]
    dev = [_enc(100 + i, c) for i, c in enumerate(chs[:3])]
    keys = {"challenge": chs, "stratum": [f"{c}|{i % 2}" for i, c in enumerate(chs)], "group": [str(i % 4) for i in range(12)],
            "round": [i % 2 for i in range(12)]}
    stats = L.example_stats(model, enc)
    assert stats["loss"].shape == (12,) and stats["rep"].shape == (12, 16)
    s = L.LLMTrainSettings(quick=True, sft=cfg, dev_per_challenge=1, n_rounds=2, replay=2, budget=0.5)
    init = L._snapshot(model)
    untrained = L.answer_loss(model, dev)["loss"]
    tok = SimpleNamespace(pad_token_id=0)
    out = {}
    for m in ("A_baseline", "B1_random", "B2_stratified", "B3_cluster", "B4_difficulty", "C_continual", "D_combined"):
        r = L.train_llm_method(m, model, tok, enc, keys, stats, dev, untrained, init, s, seed=3)
        out[m] = r
        assert r["dev_curve"][0] == {"round": 0, "epoch": 0, "dev_loss": round(untrained, 5), "examples_used": 0}
        assert r["untrained_chosen"] == (r["checkpoint"] == {"round": 0, "epoch": 0})
        assert r["dev_loss"] == min(c["dev_loss"] for c in r["dev_curve"]) or abs(r["dev_loss"] - min(c["dev_loss"] for c in r["dev_curve"])) < 1e-4
        # the model is left at the chosen checkpoint
        assert abs(L.answer_loss(model, dev)["loss"] - r["dev_loss"]) < 1e-4
        assert 0 <= r["examples_used"] <= r["examples_trained"] <= 12 and r["train_s"] > 0
    assert out["A_baseline"]["examples_trained"] == 12 and not out["A_baseline"]["untrained_chosen"]
    assert all(out[m]["examples_trained"] == 6 for m in ("B1_random", "B2_stratified"))
    assert [r["round"] for r in out["C_continual"]["rounds"]] == [1, 2] and out["C_continual"]["rounds"][1]["replayed"] == 2
    assert out["D_combined"]["examples_trained"] < out["C_continual"]["examples_trained"]
    assert len(out["C_continual"]["dev_curve"]) == 1 + 2 * s.epochs_per_round
    # an adapter that does not learn (a learning rate of almost nothing): dev selection keeps the untrained one, and says so
    import dataclasses
    s0 = dataclasses.replace(s, sft=dataclasses.replace(cfg, lr=1e-12))
    r0 = L.train_llm_method("A_baseline", model, tok, enc, keys, stats, dev, untrained, init, s0, seed=3)
    assert r0["untrained_chosen"] and r0["examples_used"] == 0 and r0["data_share"] == 0
    assert all(np.allclose(p.detach().numpy(), init[n].numpy()) for n, p in model.named_parameters() if n in init)


def test_train_lora_per_example_weights():
    """`weights` multiply each example's answer loss; None (the default) is today's unweighted training, bit for bit;
    weights of 1 give the unweighted run, 0 everywhere trains nothing, 2 everywhere doubles the loss; bad weights are refused."""
    import numpy as np
    import dataclasses
    from types import SimpleNamespace
    model, cfg = _tiny_lm()
    cfg = dataclasses.replace(cfg, lr=1e-2)
    chs = ["timing", "tool_selection", "planning"] * 2
    enc = [_enc(i, c) for i, c in enumerate(chs)]
    tok, init = SimpleNamespace(pad_token_id=0), L._snapshot(model)

    def run(**kw):
        L._restore(model, init)
        log = L.train_lora(model, tok, enc, cfg, **kw)
        return log, {n: p.detach().clone().numpy() for n, p in model.named_parameters() if n in init}

    base, p0 = run()
    again, p1 = run(weights=None)
    assert [c["loss"] for c in again["curve"]] == [c["loss"] for c in base["curve"]] and "weights" not in again
    assert all(np.array_equal(p0[n], p1[n]) for n in p0)                   # byte-identical to no weights
    ones, p2 = run(weights=[1.0] * len(enc))
    assert np.allclose([c["loss"] for c in ones["curve"]], [c["loss"] for c in base["curve"]], atol=1e-5)
    assert all(np.allclose(p0[n], p2[n], atol=1e-6) for n in p0) and ones["weights"] == {"min": 1.0, "max": 1.0, "mean": 1.0}
    two, _ = run(weights=[2] * len(enc))
    assert abs(two["curve"][0]["loss"] - 2 * base["curve"][0]["loss"]) < 1e-4
    zero, p3 = run(weights=np.zeros(len(enc)))
    assert all(c["loss"] == 0 for c in zero["curve"]) and all(np.allclose(p3[n], init[n].numpy()) for n in p3)
    for bad, msg in (([1.0] * 2, "2 weights for 6 examples"), ([1, 1, 1, -1, 1, 1], "example 3"), ([float("nan")] * 6, "finite")):
        with pytest.raises(ValueError, match=msg): L.train_lora(model, tok, enc, cfg, weights=bad)


def test_paired_test_on_engine_records(ds, tmp_path):
    from sage_bench.engine import evaluate
    a = evaluate("timing.rule_based", ds, "test", samples=30, write=False, progress=False, output_dir=tmp_path, resume=False,
                 experiment="test_paired", replace_changed=True)
    t = L.paired_test(a.records, a.records, "timing", "accuracy")
    assert t["n"] == 30 and t["diff"] == 0 and t["p"] == 1.0 and t["a"] == a.value("accuracy")


@pytest.mark.slow
@pytest.mark.llm          # the CPU LLM stack: the GGUF model, llama.cpp's converter and llama-server
def test_tiny_run_lowers_loss_converts_and_serves(tmp_path):
    pytest.importorskip("peft")
    _installed("smollm2-135m")
    from gguf import GGUFReader
    from sage_bench.llm import LLMClient
    from sage_bench.llm_service import stop_llm_service, llama_server_binary
    rec = L.run_sft(L.SFTConfig(per_challenge=2, epochs=3, accum=2), output_dir=tmp_path, dev_per_challenge=1)
    assert rec["loss_after"]["train"]["loss"] < rec["loss_before"]["train"]["loss"]
    assert len(rec["train"]["curve"]) == rec["train"]["steps"] > 0 and rec["examples"]["used"] > 0
    saved = json.loads(Path(rec["path"]).read_text())
    assert saved["examples"]["used_per_challenge"] and saved["versions"]["peft"]
    r = GGUFReader(rec["lora_gguf"])
    assert bytes(r.fields["general.type"].parts[-1]).decode() == "adapter"
    assert any(t.name.endswith(".lora_a") for t in r.tensors) and any(t.name.endswith(".lora_b") for t in r.tensors)
    assert L.run_sft(L.SFTConfig(per_challenge=2, epochs=3, accum=2), output_dir=tmp_path, dev_per_challenge=1)["reused"]
    if llama_server_binary() is None: pytest.skip("llama-server is not built (scripts/install_llm.sh llama-server)")
    info = L.serve_run(rec, SFT_PORT)
    try:
        import httpx
        root = info["url"].removesuffix("/v1")
        assert [a["path"] for a in httpx.get(root + "/lora-adapters", timeout=30).json()] == [str(Path(rec["lora_gguf"]).resolve())]
        ex = L.sft_examples("sage", per_challenge=1, seed=3)["examples"][0]
        tok = rec["_tokenizer"]      # the server renders the prompt as the training did
        assert httpx.post(root + "/apply-template", json={"messages": ex.messages}, timeout=60).json()["prompt"] == \
            tok.apply_chat_template(ex.messages, add_generation_prompt=True, tokenize=False)
        resp = LLMClient(info["url"], model=info["client_model"], cache=False).chat(ex.messages, ex.schema)
        assert resp.error is None and _schema_ok(resp.parsed, ex.schema)
        from sage_bench.engine import evaluate          # the tuned method through the engine, on the server already up
        m = L._tuned_classes()["timing"](adapter_run=rec["path"], port=SFT_PORT)
        res = evaluate(m, "sage", "test", samples=3, output_dir=tmp_path / "eval", resume=False, progress=False, name="tuned")
        assert m.config["llm"].get("model", info["client_model"]) == info["client_model"] and res.metrics["n"] == 3
        assert res.metrics.get("error_rate", 0) == 0 and m.describe()["sft"]["lora_gguf"] == rec["lora_gguf"]
    finally:
        stop_llm_service(SFT_PORT)
    # by name through the engine, as `sage-bench eval --methods trained.llm` runs it: the method serves its adapter itself,
    # and no server is left when the run ends
    from sage_bench.llm_service import _read_state
    del m; gc.collect()
    assert _read_state(SFT_PORT) is None
    res = evaluate("trained.llm", "sage", "test", samples=2, output_dir=tmp_path / "eval2", resume=False, progress=False,
                   method_config={"challenge": "timing", "adapter_run": rec["path"], "port": SFT_PORT})
    gc.collect()
    assert res.metrics["n"] == 2 and res.metrics.get("error_rate", 0) == 0 and _read_state(SFT_PORT) is None


@pytest.mark.slow
@pytest.mark.llm          # the CPU LLM stack end to end: train, convert, serve on a port of its own, score, stop
def test_5_5_comparison_end_to_end_tiny(tmp_path):
    pytest.importorskip("peft")
    _installed("smollm2-135m")
    from sage_bench.llm_service import llama_server_binary, _read_state
    if llama_server_binary() is None: pytest.skip("llama-server is not built (scripts/install_llm.sh llama-server)")
    s = L.LLMTrainSettings(quick=True, sft=L.SFTConfig(quick=True, per_challenge=1, epochs=1, top_layers=2), dev_per_challenge=1,
                           eval_samples=1)
    res = L.run_llm_training("A_baseline,B1_random,C_continual", settings=s, output_dir=tmp_path, port=SFT_PORT, progress=False,
                             encoder_net=False)
    assert _read_state(SFT_PORT) is None                        # every server it started, it stopped
    saved = json.loads(Path(res["path"]).read_text())
    assert saved["methods"] == ["A_baseline", "B1_random", "C_continual"] and saved["llm"] is True
    S = saved["summary"]
    assert {L.ZERO_SHOT, "A_baseline", "B1_random", "C_continual", "selector.keyword", "planner.simple"} <= set(S)
    for r in saved["runs"]:
        if r["kind"] == "llm":
            assert r["checkpoint"]["round"] >= 0 and r["examples_used"] <= r["pool"] and r["train_s"] > 0
            assert all(r[ch]["n"] == 1 for ch in L.SFT_METHODS)
            assert r["untrained_chosen"] or Path(json.loads(Path(r["run"]).read_text())["lora_gguf"]).exists()
    assert any(t["vs"] == L.ZERO_SHOT and t["n"] == 1 for t in saved["tests"])
    assert L.default_adapter(True, 42, tmp_path).exists()      # trained.llm's default adapter: this run's A
    assert saved["rates"]["eval_s_per_sample"] > 0


def test_paper_5_5_text_from_the_saved_quick_run():
    "The 5.5 text states the paired tests of the saved quick run and says plainly where training does not help."
    from sage_bench.paper import Fragment, llm_tests_text
    from sage_bench.results import ResultFile
    saved = json.loads((Path(__file__).resolve().parents[1] / "bench/results/section_5_5_quick.json").read_text())["result"]
    rf = ResultFile.from_dict(saved, None, "method")
    frag = Fragment("5.5")
    text = llm_tests_text(frag, "training_comparison.json", rf)
    a = {(t["challenge"], t["metric"]): t for t in saved["tests"] if t["method"] == "A_baseline" and t["vs"] == L.ZERO_SHOT}
    heads = saved["headline"]
    lost = [ch for ch, k in heads.items() if not (a[ch, k]["diff"] > 0 and a[ch, k]["p"] < 0.05)]
    if lost: assert f"does not beat its zero-shot base on {len(lost)} of {len(heads)} challenges" in text, text
    t = a["planning", "step_f1"]       # a number in the text is the file's, and claimed at its place in the file
    assert f"${100 * t['diff']:+.1f}$ points $[{100 * t['lo']:.1f}, {100 * t['hi']:.1f}]$, $p = {t['p']:.3f}$" in text, text
    i = saved["tests"].index(t)
    assert any(c["pointer"] == ["tests", i, "diff"] and c["value"] == t["diff"] for c in frag.claims)
