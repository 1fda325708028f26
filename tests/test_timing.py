"Tests of the four timing methods (sage_bench.methods.timing)."
import pytest
from sage_bench.core import TimingSample, Tool, ToolLibrary
from sage_bench.methods.base import blind, Output
from sage_bench.testing import ScriptedLLM
from sage_bench.methods.timing import (EmbeddingTiming, LLMTiming, HybridTiming,
                                       rule_verdict, TIMING_SCHEMA, TIMING_PROMPTS, timing_messages)
from sage_bench.registry import get_dataset, get_method, lookup

from conftest import real_server_mark

needs_server = real_server_mark()

POS = ["What's the weather in Paris tomorrow?", "Book a table for two at Luigi's tonight at 8",
       "Send an email to bob@example.com saying the report is ready", "Check my calendar for Friday afternoon",
       "How much is 300 USD in euros right now?", "Please set a reminder to water the plants at 6pm",
       "Can you order a large pepperoni pizza to my home?", "What's the current price of Tesla stock?",
       "Turn off the bedroom lights", "Find flights from Madrid to Lisbon next Monday"]
NEG = ["Hello!", "Thanks, that's very helpful!", "Write me a poem about autumn leaves", "Explain how photosynthesis works",
       "What do you think about remote work?", "Tell me a joke about programmers", "How are you today?",
       "Why is the sky blue?", "Can you rephrase this sentence to be more formal?", "Goodbye, see you later"]

LIB = ToolLibrary([
    Tool("get_weather", "get_weather", "Current weather and forecast for a city", {"type": "object", "properties": {"city": {"type": "string"}}}, "weather"),
    Tool("send_email", "send_email", "Send an email to a recipient", {"type": "object", "properties": {"to": {"type": "string"}}}, "email"),
    Tool("book_table", "book_table", "Reserve a restaurant table", {"type": "object", "properties": {"restaurant": {"type": "string"}}}, "dining"),
])


def ts(i, msg, y, split="test", ctx=()):
    return TimingSample(id=f"s{i}", dataset="fx", split=split, message=msg, should_call_tool=y, context=list(ctx))


FIX = [ts(i, m, True) for i, m in enumerate(POS)] + [ts(100 + i, m, False) for i, m in enumerate(NEG)]
TRAIN = [ts(200 + i, m, y, "train") for i, (m, y) in enumerate([
    ("What's the temperature in Rome right now?", True), ("Email my boss that I'm sick", True), ("Reserve a hotel room in Oslo", True),
    ("Play my workout playlist", True), ("Get the latest headlines", True), ("Cancel my 3pm meeting", True),
    ("Hi there", False), ("Thank you!", False), ("What is the meaning of life?", False), ("Write a haiku about snow", False),
    ("Explain recursion to me", False), ("Who painted the Mona Lisa?", False)])]


def well_formed(o: Output):
    assert isinstance(o, Output)
    if o.prediction is not None:
        assert set(o.prediction) == {"call_tool", "confidence"}
        assert isinstance(o.prediction["call_tool"], bool) and 0.0 <= o.prediction["confidence"] <= 1.0
    else:
        assert o.error


def test_registered():
    for mid, llm in [("timing.rule_based", False), ("timing.embedding", False), ("timing.llm_based", True), ("timing.hybrid", True)]:
        e = lookup("method", mid)
        assert e.challenge == "timing" and e.needs_llm is llm


@pytest.mark.parametrize("msg", POS)
def test_rules_positive(msg):
    assert rule_verdict(msg).call_tool, rule_verdict(msg)


@pytest.mark.parametrize("msg", NEG)
def test_rules_negative(msg):
    assert not rule_verdict(msg).call_tool, rule_verdict(msg)


def test_rules_follow_up_uses_context():
    offer = [{"role": "user", "content": "Any flights to Rome on Friday?"}, {"role": "assistant", "content": "There is one at 9am. Shall I book it?"}]
    assert rule_verdict("Yes please", offer).call_tool
    assert not rule_verdict("No thanks", offer).call_tool


def test_rule_based_method_on_fixture():
    outs = get_method("timing.rule_based").predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))
    for o in outs: well_formed(o)
    acc = sum(o.prediction["call_tool"] == s.should_call_tool for o, s in zip(outs, FIX)) / len(FIX)
    assert acc == 1.0


class BowEmbedder:
    name = "bow"
    def encode(self, texts, kind="query"):
        import re, zlib, numpy as np
        X = np.zeros((len(texts), 128), dtype="float32")
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()): X[i, zlib.crc32(w.encode()) % 128] += 1
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)


def test_embedding_fits_on_train_only_and_is_deterministic():
    m = EmbeddingTiming(embedder=BowEmbedder())
    m.fit(TRAIN)
    assert m.fitted_on.startswith("train (12")
    a = [o.prediction for o in m.predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))]
    m2 = EmbeddingTiming(embedder=BowEmbedder()); m2.fit(TRAIN)
    assert a == [o.prediction for o in m2.predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))]


def test_embedding_real_embedder_knn_and_logreg():
    from sage_bench.embed import get_embedder      # a project module and an installed model: a failure here is a failure
    emb = get_embedder()
    for clf in ("logreg", "knn"):
        m = EmbeddingTiming(classifier=clf, embedder=emb)
        m.fit(TRAIN)
        outs = m.predict_batch([blind(s) for s in FIX], [LIB] * len(FIX))
        for o in outs: well_formed(o)
        acc = sum(o.prediction["call_tool"] == s.should_call_tool for o, s in zip(outs, FIX)) / len(FIX)
        assert acc >= 0.7, (clf, acc)
    # no usable training data: the built-in prototypes, said so
    m = EmbeddingTiming(embedder=emb); m.fit([])
    assert m.fitted_on.startswith("prototypes")
    assert m.predict_batch([blind(FIX[0])], [LIB])[0].trace["fitted_on"].startswith("prototypes")


def test_llm_based_with_scripted_client_and_failures():
    fake = ScriptedLLM(lambda m, s: {"call_tool": True, "confidence": 0.6, "reason": "x"})
    outs = LLMTiming(client=fake, prompt="few_shot").predict_batch([blind(s) for s in FIX[:3]], [LIB] * 3)
    for o in outs: well_formed(o); assert o.llm_calls == 1 and o.prompt_tokens == 10 and o.raw_output
    assert all(schema == TIMING_SCHEMA for _, schema in fake.calls)
    bad = LLMTiming(client=ScriptedLLM(lambda m, s: {"verdict": "yes"})).predict_batch([blind(FIX[0])], [LIB])[0]
    assert bad.prediction is None and bad.parse_status == "failed" and bad.error and bad.fallback is None
    def down(m, s): raise ConnectionError("server down")
    o = LLMTiming(client=ScriptedLLM(down)).predict_batch([blind(FIX[0])], [LIB])[0]
    assert o.prediction is None and "server down" in o.error and o.fallback is None


def test_prompt_variants_recorded():
    for p in TIMING_PROMPTS:
        assert LLMTiming(prompt=p, client=ScriptedLLM(lambda m, s: {})).describe()["config"]["prompt"] == p
        assert timing_messages(FIX[0], LIB, p)[-1]["content"]
    with pytest.raises(ValueError): LLMTiming(prompt="nope")


def test_hybrid_takes_each_path():
    clear, unclear = ts(1, "Book a table for two at Luigi's tonight", True), ts(2, "hmm, the blue one", False)
    fake = ScriptedLLM(lambda m, s: {"call_tool": True, "confidence": 0.7, "reason": "x"})
    o_rule, o_llm = HybridTiming(threshold=0.75, client=fake).predict_batch([blind(clear), blind(unclear)], [LIB, LIB])
    assert o_rule.trace["path"] == "rule" and o_rule.llm_calls == 0 and o_rule.fallback is None
    assert o_llm.trace["path"] == "llm" and o_llm.llm_calls == 1 and o_llm.prediction == {"call_tool": True, "confidence": 0.7}
    assert len(fake.calls) == 1 and "the blue one" in fake.calls[0][0][-1]["content"]
    # threshold 1.0: everything goes to the LLM; threshold 0: nothing does
    fake2 = ScriptedLLM(lambda m, s: {"call_tool": False, "confidence": 0.9, "reason": "x"})
    assert all(o.trace["path"] == "llm" for o in HybridTiming(threshold=1.01, client=fake2).predict_batch([blind(clear), blind(unclear)], [LIB] * 2))
    assert all(o.trace["path"] == "rule" for o in HybridTiming(threshold=0.0, client=fake2).predict_batch([blind(clear), blind(unclear)], [LIB] * 2))
    # the LLM's reply fails: a failure of that sample (the rule verdict stays in the trace, not in its place)
    o = HybridTiming(threshold=0.75, client=ScriptedLLM(lambda m, s: "not json")).predict_batch([blind(unclear)], [LIB])[0]
    assert o.prediction is None and o.fallback is None and o.trace["path"] == "llm" and o.error and o.parse_status == "failed"
    assert o.trace["rule"]["call_tool"] is False and not o.transport_error
    def down(m, s): raise ConnectionError("server down")
    o_rule, o_llm = HybridTiming(threshold=0.75, client=ScriptedLLM(down)).predict_batch([blind(clear), blind(unclear)], [LIB] * 2)
    assert o_rule.prediction is not None and not o_rule.transport_error
    assert o_llm.prediction is None and o_llm.transport_error and "server down" in o_llm.error


def test_hybrid_threshold_is_fitted_on_the_training_split():
    "threshold=None (the default): fit() sets it where the rules were reliable on the training turns; unfitted, it refuses."
    h = HybridTiming(client=ScriptedLLM(lambda m, s: {"call_tool": True, "confidence": 0.9, "reason": "x"}))
    with pytest.raises(RuntimeError, match="fit"): h.threshold
    ds = get_dataset("sage")
    h.fit(ds.select("timing", "train"), ds)
    assert h.describe()["fitted_threshold"] is not None and HybridTiming(threshold=0.5).describe().get("fitted_threshold") is None


@pytest.mark.parametrize("mid", ["timing.llm_based", "timing.hybrid"])
def test_llm_timing_failure_policy_and_explicit_fallback(mid, tmp_path):
    """Both LLM timing methods are LLMMethods: a failed reply fails the sample; `fallback="timing.rule_based"` has the
    engine answer exactly those samples with the rules, marked as such."""
    from sage_bench.engine import evaluate
    from sage_bench.methods.base import LLMMethod
    from sage_bench.registry import get_dataset
    def down(m, s): raise ConnectionError("server down")
    ds = get_dataset("sage")
    m = get_method(mid, client=ScriptedLLM(down), fallback="timing.rule_based", threshold=1.01) if mid == "timing.hybrid" else \
        get_method(mid, client=ScriptedLLM(down), fallback="timing.rule_based")
    assert isinstance(m, LLMMethod) and m.describe()["config"]["fallback"] == "timing.rule_based"
    r = evaluate(m, ds, "test", samples=6, output_dir=tmp_path, progress=False, n_boot=10, write=False)
    assert all(x.fallback == "timing.rule_based" and x.prediction is not None and "server down" in x.trace["llm_error"] for x in r.records)
    assert r.metrics["fallback_rate"] == 1.0 and r.metrics["n_transport_failures"] == 6


@needs_server
def test_llm_based_real_server():
    m = get_method("timing.llm_based")
    outs = m.predict_batch([blind(s) for s in FIX[:4] + FIX[10:14]], [LIB] * 8)
    for o in outs: well_formed(o)
    ok = [o for o in outs if o.prediction is not None]
    assert ok, [o.error for o in outs]
    assert all(o.llm_calls + o.cached_calls >= 1 and o.raw_output for o in ok)
    acc = sum(o.prediction["call_tool"] == s.should_call_tool for o, s in zip(outs, FIX[:4] + FIX[10:14]) if o.prediction)
    assert acc >= 5, [(s.message, o.prediction) for o, s in zip(outs, FIX[:4] + FIX[10:14])]


@needs_server
def test_hybrid_real_server():
    outs = get_method("timing.hybrid", threshold=1.01).predict_batch([blind(FIX[0]), blind(FIX[10])], [LIB] * 2)
    for o in outs: well_formed(o); assert o.trace["path"] == "llm" and (o.prediction is not None or o.error)
