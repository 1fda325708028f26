"""LoRA SFT of a small LLM (sage_bench.training.llm_sft): the examples are the LLM methods' own requests with gold
answers in their schemas (fast); a tiny training run lowers the loss, the adapter converts with llama.cpp's converter
and llama-server serves it (marked slow and llm: the fast tier leaves it out)."""
import json
from pathlib import Path

import pytest

from sage_bench.methods.base import blind
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
        elif s.challenge == "tool_selection":
            cands = e.schema["properties"]["ranking"]["items"]["enum"]
            assert len(cands) == cfg["tool_selection"]["m"]
            assert e.messages == rerank_messages(s.query, [ds.tools[c] for c in cands], cfg["tool_selection"]["max_desc"],
                                                 cfg["tool_selection"]["prompt"])
            assert e.schema == _ranking_schema(cands, len(cands), 1)
            assert ans["ranking"] == [t for t in s.relevant_tools if t in cands]
        else:
            assert e.messages == query_messages(s.request) and e.schema == query_schema(12)
            assert len(ans["queries"]) == len(s.tool_sequence)
            plan = ex.get(f"{s.id}#1")
            if plan is None: continue         # a gold tool was not among the candidates: the plan step is left out
            ids = plan.schema["properties"]["steps"]["items"]["enum"]
            assert set(s.tool_sequence) <= set(ids)
            user = plan.messages[-1]["content"]
            assert s.request in user and all(tool_card(ds.tools[t], cfg["planning"]["desc_chars"]) in user for t in ids)
            assert json.loads(plan.answer) == {"steps": s.tool_sequence}
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


def test_tuned_methods_run_as_trained():
    C = L._tuned_classes()
    llm = {"base_urls": "http://127.0.0.1:9/v1", "model": "x+lora-0"}
    for ch, cls in C.items():
        m = cls(llm=llm)
        assert m.challenge == ch and m.config["llm"] == llm and m.config["quick"] is True
        assert all(m.config[k] == v for k, v in L.SFT_METHOD_CONFIG[True][ch].items())      # the trained configuration
        m.fit([], None)                                # pointed at a server: nothing to train or serve
    assert C["timing"](quick=False).config["prompt"] == "default"
    assert L.TUNED_IDS == {"timing": "trained.llm_timing", "tool_selection": "trained.llm_selector", "planning": "trained.llm_planner"}


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
        assert m.config["llm"]["model"] == info["client_model"] and res.metrics["n"] == 3
        assert res.metrics.get("error_rate", 0) == 0 and m.describe()["sft"]["lora_gguf"] == rec["lora_gguf"]
    finally:
        stop_llm_service(SFT_PORT)
