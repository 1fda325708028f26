"""LLM throughput on the methods' real prompts: the same requests sent one at a time and several at once.

The requests are the ones the LLM methods really send: each LLM method of the registry runs on a few `sage` test
samples with a recording client (it answers every call with the smallest reply its JSON schema allows, so a method
goes on to its next call), and the first `--calls` calls of each sample are kept, with their schema and sampling
settings. The batch is then sent to the server through `sage_bench.llm.LLMClient`, first with one request in flight
(sequential), then with `--concurrency` in flight (concurrent), and the two are compared in one run. As in a real run
(`LLMMethod.predict_batch`), the samples are concurrent and the calls of one sample go in order, each after the reply
to the one before:

    .venv/bin/python bench/llm_throughput.py                      # the server on http://127.0.0.1:8901/v1
    .venv/bin/python bench/llm_throughput.py --url http://127.0.0.1:8931/v1 --samples 2 --calls 1 --repeats 2

Printed per mode: wall time, requests/s, completion tokens/s, prompt tokens the server evaluated and the ones it took
from its prompt cache, and (llama-server with --metrics) how many slots were busy per decode step, as the server
reports it; then the ratio concurrent / sequential. A mode-specific tag opens every prompt of a pass, so no pass
profits from prompts the other pass left in the server's cache, while the prefixes the requests of one pass share (the
methods' system prompts and tool lists) are reused as in a real run. With `--repeats N` the two modes alternate N
times in swapped order (sequential first, then concurrent first, ...), which spreads slow drifts of the machine's load
over both; the median ratio is printed. `--json PATH` writes every figure.
"""
from __future__ import annotations
import argparse, asyncio, json, os, statistics, sys, time
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from sage_bench.llm import LLMClient  # noqa: E402
from sage_bench.llm_service import llama_server_metrics, llama_server_slots  # noqa: E402


# ---------------------------------------------------------------------------------------------------------- prompts
def smallest(schema):
    "The smallest value valid under a JSON schema (first enum value, required keys only, minItems items)."
    if not isinstance(schema, dict): return None
    if "const" in schema: return schema["const"]
    if schema.get("enum"): return schema["enum"][0]
    for k in ("anyOf", "oneOf", "allOf"):
        if schema.get(k): return smallest(schema[k][0])
    t = schema.get("type")
    if isinstance(t, list): t = next((x for x in t if x != "null"), t[0])
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: smallest(props.get(k, {})) for k in schema.get("required", list(props))}
    if t == "array": return [smallest(schema.get("items", {})) for _ in range(int(schema.get("minItems", 1) or 1))]
    if t == "string": return "x" * int(schema.get("minLength", 1) or 1)
    if t in ("integer", "number"): return schema.get("minimum", 1)
    if t == "boolean": return False
    return None


class RecordingClient:
    "Stands in for the LLM client of a method: keeps each request (messages, schema, sampling) and answers `smallest`."
    def __init__(self): self.calls = []

    def _answer(self, messages, schema=None, json_mode=False, **kw):
        self.calls.append({"messages": [dict(m) for m in messages], "schema": schema, "json_mode": json_mode, "kw": kw})
        v = smallest(schema) if schema else {}
        return SimpleNamespace(text=json.dumps(v), parsed=v, parse_status="strict", prompt_tokens=0, completion_tokens=0,
                               latency_s=0.0, cached=False, error=None, transport_error=False, ok=True, model="recorder")

    async def achat(self, messages, schema=None, **kw): return self._answer(messages, schema, **kw)
    def chat(self, messages, schema=None, **kw): return self._answer(messages, schema, **kw)
    def chat_many(self, requests, **kw):
        out = []
        for r in requests:
            m, s = (r["messages"], r.get("schema")) if isinstance(r, dict) else (r[0], r[1] if len(r) > 1 else None)
            out.append(self._answer(m, s, **kw))
        return out
    async def achat_many(self, requests, **kw): return self.chat_many(requests, **kw)
    def available(self, *a, **k): return True
    def status_line(self, *a, **k): return ""


def method_requests(methods=None, samples: int = 2, calls: int = 2, dataset: str = "sage", split: str = "test") -> tuple[list, dict]:
    """The requests the LLM methods send on the first `samples` samples of `dataset`/`split`: at most `calls` per sample,
    in the order a method sends them. Returns (requests, {method: number kept or the error that stopped it})."""
    from sage_bench.registry import entries, get_dataset, get_method
    from sage_bench.methods.base import blind
    ds = get_dataset(dataset)
    ids = [e.name for e in entries("method") if e.needs_llm]
    if methods: ids = [m for m in ids if m in methods or any(m.startswith(p.rstrip("*")) for p in methods if p.endswith("*"))]
    reqs, kept = [], {}
    for mid in ids:
        try:
            m = get_method(mid, client=RecordingClient())
            challenge = m.challenge
            m.fit(ds.select(challenge, "train"), ds)
            n0 = len(reqs)
            for s in ds.select(challenge, split)[:samples]:
                rec = RecordingClient()
                m._client = rec                            # one recorder per sample: its calls stay together, in order
                m.predict_batch([blind(s)], [ds.candidates(s)])
                reqs += [dict(c, method=mid, sample=s.id) for c in rec.calls[:calls]]
            kept[mid] = len(reqs) - n0
        except Exception as e:  # noqa: BLE001 - a method that cannot run here is reported, the others still count
            kept[mid] = f"{type(e).__name__}: {e}"
    return reqs, kept


def tagged(req: dict, tag: str) -> dict:
    "The request with `tag` in front of its first message: a prefix the other pass never used."
    msgs = [dict(m) for m in req["messages"]]
    msgs[0]["content"] = f"[{tag}]\n" + str(msgs[0].get("content", ""))
    return {**req, "messages": msgs}


# ---------------------------------------------------------------------------------------------------------- server
def server_metrics(url: str) -> dict:
    "llama-server's /metrics counters (started with --metrics); {} from a server without them."
    return llama_server_metrics(url, timeout=30)


def server_slots(url: str) -> int | None:
    "How many parallel slots llama-server has (/props total_slots); None for another server."
    return llama_server_slots(url, timeout=30)


def metrics_delta(before: dict, after: dict) -> dict:
    "What the server did between two /metrics snapshots."
    if not before or not after: return {}
    d = {k: after.get(k, 0) - before.get(k, 0) for k in ("prompt_tokens_total", "prompt_tokens_cached_total",
                                                        "tokens_predicted_total", "n_decode_total")}
    busy = after.get("n_busy_slots_per_decode", 0) * after.get("n_decode_total", 0) - \
        before.get("n_busy_slots_per_decode", 0) * before.get("n_decode_total", 0)
    d["busy_slots_per_decode"] = busy / d["n_decode_total"] if d["n_decode_total"] > 0 else 0.0
    return d


# ---------------------------------------------------------------------------------------------------------- runs
def run(url, model, reqs, concurrency, max_tokens, tag) -> dict:
    c = LLMClient(url, model=model, cache=False, concurrency=concurrency, timeout_s=1800, max_retries=0,
                  **({"max_tokens": max_tokens} if max_tokens else {}))
    before = server_metrics(url)

    chains = {}                             # a sample's calls, in order: a method sends each after the previous reply
    for q in reqs: chains.setdefault((q["method"], q["sample"]), []).append(tagged(q, tag))

    async def chain(qs):
        return [await c.achat(q["messages"], q["schema"], json_mode=q["json_mode"], **q["kw"]) for q in qs]

    async def go():                         # the samples run concurrently, as in LLMMethod.predict_batch
        try: return [r for rs in await asyncio.gather(*[chain(qs) for qs in chains.values()]) for r in rs]
        finally: await c.aclose()
    t0 = time.perf_counter()
    out = asyncio.run(go())
    wall = time.perf_counter() - t0
    errors = [r.error for r in out if r.error]
    if errors: sys.exit(f"{len(errors)} request(s) failed, e.g. {errors[0]}")
    toks = sum(r.completion_tokens for r in out)
    return {"concurrency": concurrency, "wall_s": wall, "req_s": len(out) / wall, "tok_s": toks / wall,
            "completion_tokens": toks, "prompt_tokens": sum(r.prompt_tokens for r in out), "model": out[0].model,
            "parse": {s: sum(r.parse_status == s for r in out) for s in sorted({r.parse_status for r in out})},
            "server": metrics_delta(before, server_metrics(url))}


def show(name: str, r: dict) -> str:
    s = r["server"]
    extra = (f"; server: {s['prompt_tokens_total']:.0f} prompt tokens evaluated, {s['prompt_tokens_cached_total']:.0f} "
             f"from cache, {s['busy_slots_per_decode']:.2f} busy slots per decode") if s else ""
    return (f"{name:>15}: {r['wall_s']:7.1f} s  {r['req_s']:6.3f} req/s  {r['tok_s']:6.2f} completion tok/s  "
            f"({r['completion_tokens']} completion, {r['prompt_tokens']} prompt tokens{extra})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("SAGE_BENCH_LLM_URL", "http://127.0.0.1:8901/v1").split(",")[0])
    ap.add_argument("--model", default=None, help="default: the first model the server lists")
    ap.add_argument("--methods", default=None, help="comma-separated LLM method ids (a trailing * matches a prefix); default: all")
    ap.add_argument("--samples", type=int, default=2, help="sage test samples per method")
    ap.add_argument("--calls", type=int, default=2, help="requests kept per sample (the first ones the method sends)")
    ap.add_argument("--concurrency", default=None,
                    help="requests in flight, or several comma-separated (each is compared with sequential); "
                         "default: the server's slots (else 4)")
    ap.add_argument("--max-tokens", type=int, default=None, help="cap on completion tokens; default: what the methods ask")
    ap.add_argument("--repeats", type=int, default=1, help="run the modes this many times, in rotated order (median ratio)")
    ap.add_argument("--json", default=None, help="write every figure to this file")
    a = ap.parse_args(argv)
    probe = LLMClient(a.url, model=a.model, cache=False)
    if not probe.available():
        sys.exit(f"no LLM server answers {a.url}: start one with `sage-bench llm start`")
    slots = server_slots(a.url)
    concs = [int(x) for x in a.concurrency.split(",")] if a.concurrency else [slots or 4]
    t0 = time.perf_counter()
    reqs, kept = method_requests(a.methods.split(",") if a.methods else None, a.samples, a.calls)
    if not reqs: sys.exit(f"no method request was recorded: {kept}")
    chars = [sum(len(str(m.get("content", ""))) for m in r["messages"]) for r in reqs]
    print(f"{len(reqs)} requests from the methods' real prompts ({time.perf_counter() - t0:.1f} s to record), "
          f"{a.samples} sage test sample(s) x {a.calls} call(s) per method: "
          + ", ".join(f"{k} {v}" for k, v in kept.items()))
    print(f"prompt sizes {min(chars)}-{max(chars)} characters (median {statistics.median(chars):.0f}); server {a.url}, "
          f"{slots if slots else 'unknown'} slot(s), concurrency {','.join(map(str, concs))}, {os.cpu_count()} CPUs")
    run(a.url, a.model, reqs[:1], 1, 4, "warm-up")                      # model load, first prompt
    modes = [("sequential", 1)] + [(f"concurrent x{n}", n) for n in concs]
    rounds, ratios = [], {m: [] for m, _ in modes[1:]}
    for rep in range(a.repeats):
        load0 = os.getloadavg()[0]
        k = rep % len(modes)
        order = modes[k:] + modes[:k]                  # rotated: each mode runs first in turn
        print(f"[{rep + 1}/{a.repeats}] load average {load0:.1f}, order: {', '.join(o[0] for o in order)}", flush=True)
        res = {}
        for i, (name, n) in enumerate(order):
            res[name] = run(a.url, a.model, reqs, n, a.max_tokens, f"pass {rep}.{i} {time.time():.6f}")
            print(show(name, res[name]), flush=True)
        seq = res["sequential"]
        print(f"[{rep + 1}/{a.repeats}] model {seq['model']}, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
        for name, _ in modes[1:]:
            con = res[name]
            ratios[name].append({"req_s": con["req_s"] / seq["req_s"], "tok_s": con["tok_s"] / seq["tok_s"]})
            print(f"{'ratio':>15}: {ratios[name][-1]['req_s']:.2f}x req/s, {ratios[name][-1]['tok_s']:.2f}x completion "
                  f"tok/s ({name} / sequential)")
        rounds.append({"load_before": load0, "load_after": os.getloadavg()[0], "order": [o[0] for o in order], **res})
    med = {name: statistics.median(r["req_s"] for r in rs) for name, rs in ratios.items()}
    if a.repeats > 1:
        for name, m in med.items(): print(f"median ratio over {a.repeats} repeats, {name}: {m:.2f}x req/s")
    print("note: a load average above the CPU count means other processes share the cores; compare ratios from one run, "
          "not absolute speeds across runs")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"url": a.url, "slots": slots, "concurrency": concs, "cpus": os.cpu_count(), "n_requests": len(reqs),
                       "kept": kept, "samples": a.samples, "calls": a.calls, "max_tokens": a.max_tokens,
                       "prompt_chars": chars, "rounds": rounds, "ratios": ratios, "median_ratio_req_s": med,
                       "when": time.strftime("%Y-%m-%d %H:%M:%S")}, f, indent=1)
    return med


if __name__ == "__main__":
    main()
