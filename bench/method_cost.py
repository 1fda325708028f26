"""Where the LLM time of quick section 5.2 goes: each LLM method's quick plan (its quick configuration, its quick samples)
run once against a llama-server with empty caches (a fresh store, no reply cache), with llama-server's own counters
(/metrics) read before and after: prompt tokens evaluated and taken from the cache, tokens generated, decode calls,
and the wall time. Methods run one after another, so each row's counters are that method's alone.

    SAGE_BENCH_HOME=$(mktemp -d) .venv/bin/python bench/method_cost.py --url http://127.0.0.1:8901/v1 [--methods a,b]

Prints a table and merges it into bench/results/method_cost.json under `--label`.

`--rates` measures the server's own speeds on this machine instead (each alone, nothing else sent): prefill of a quick
planner's prompt (planner.llm_based's messages with 10 candidate tools, prompt cache off) and decode of 96 tokens with 1, 2 and 4 requests in flight (continuous
batching), kept under "rates". `--print` shows the saved rows, the LLM methods' total, and an estimate of a full 5.2 run:
each method's quick seconds per sample times the size of the sage test split of its challenge (the full run's budgets are
larger and its default model, 1.5B, is slower per token: the full run takes longer than this).
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).parent / "results" / "method_cost.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8901/v1"); ap.add_argument("--methods", default="")
    ap.add_argument("--label", default="quick plan"); ap.add_argument("--llm-samples", type=int, default=None)
    ap.add_argument("--rates", action="store_true", help="measure prefill and decode speeds (see above)")
    ap.add_argument("--print", action="store_true", help="print the saved measurements and the full-run bound")
    a = ap.parse_args(argv)
    if a.print: return show(json.loads(RESULTS.read_text()))
    if a.rates: return rates(a.url)
    os.environ["SAGE_BENCH_LLM_URL"] = a.url
    from sage_bench.engine import evaluate
    from sage_bench.experiments.main_eval import run_plan, QUICK_LLM_SAMPLES
    from sage_bench.llm_service import llama_server_metrics
    from sage_bench.registry import lookup, method_ids
    chosen = [m for m in a.methods.split(",") if m] or [m for m in method_ids() if lookup("method", m).needs_llm]
    rows, out = [], Path(tempfile.mkdtemp(prefix="method_cost_"))
    for m in chosen:
        plan = run_plan(m, True, None, a.llm_samples or QUICK_LLM_SAMPLES)
        m0, t0 = llama_server_metrics(a.url), time.perf_counter()
        r = evaluate(m, "sage", "test", experiment="method_cost", output_dir=out, progress=False, **plan)
        wall, m1 = time.perf_counter() - t0, llama_server_metrics(a.url)
        d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
        row = {"method": m, "n": r.metrics["n"], "wall_s": round(wall, 1),
               "prompt_evaluated": int(d.get("prompt_tokens_total", 0)), "prompt_cached": int(d.get("prompt_tokens_cached_total", 0)),
               "generated": int(d.get("tokens_predicted_total", 0)), "decode_calls": int(d.get("n_decode_total", 0)),
               "prompt_s": round(d.get("prompt_seconds_total", 0), 1), "gen_s": round(d.get("tokens_predicted_seconds_total", 0), 1)}
        rows.append(row); print(json.dumps(row), flush=True)
    entries = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    entries[a.label] = {"when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "url": a.url, "model": _served_model(a.url),
                        "rows": rows}
    RESULTS.write_text(json.dumps(entries, indent=1) + "\n")


def _root(url: str) -> str: return url.rstrip("/").removesuffix("/v1")


def _served_model(url: str) -> str | None:
    import httpx
    try: return httpx.get(_root(url) + "/v1/models", timeout=10).json()["data"][0]["id"]
    except Exception: return None


def _timings(url: str, path: str, body: dict) -> dict:
    import httpx
    return httpx.post(_root(url) + path, json=body, timeout=900).json()["timings"]


def rates(url: str, rounds: int = 2) -> None:
    "Prefill and decode speeds of the server at `url`, each measured alone; merged into the file under 'rates'."
    import concurrent.futures as cf
    import statistics
    from sage_bench.registry import get_dataset
    from sage_bench.methods.planning import plan_messages, tool_card, candidate_tools
    from sage_bench.retrieval import Retriever
    ds = get_dataset("sage"); s0 = ds.select("planning", "test")[0]
    ids = candidate_tools(s0.request, ds.tools, Retriever("bm25"), n=10)
    msgs = plan_messages(s0.request, "\n".join(tool_card(ds.tools[i], 80) for i in ids))
    pre = [_timings(url, "/v1/chat/completions", {"messages": msgs, "max_tokens": 1, "cache_prompt": False})
           for _ in range(rounds)]
    out = {"prefill_tokens": pre[0]["prompt_n"], "prefill_tok_s": round(statistics.median(t["prompt_per_second"] for t in pre), 1)}
    for conc in (1, 2, 4):
        walls, toks = [], 0
        for r in range(rounds):
            body = lambda i: {"prompt": f"Story {r}-{i}: once upon a time", "n_predict": 96, "ignore_eos": True,
                              "temperature": 0.7, "seed": i, "cache_prompt": False}
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(conc) as ex: res = list(ex.map(lambda i: _timings(url, "/completion", body(i)), range(conc)))
            walls.append(time.perf_counter() - t0); toks = sum(t["predicted_n"] for t in res)
        out[f"decode_tok_s_{conc}_in_flight"] = round(toks / statistics.median(walls), 1)
    import os as _os
    out.update(when=time.strftime("%Y-%m-%d %H:%M", time.gmtime()), url=url, model=_served_model(url),
               load_before=round(_os.getloadavg()[0], 2))
    print(json.dumps(out))
    entries = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    entries["rates"] = out
    RESULTS.write_text(json.dumps(entries, indent=1) + "\n")


def show(entries: dict) -> None:
    import pandas as pd
    from sage_bench.registry import get_dataset
    ds = get_dataset("sage")
    from sage_bench.registry import lookup
    for label, e in entries.items():
        if label == "rates":
            print(f"== server speeds ({e['when']}, {e.get('model')}): "
                  + ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("when", "url", "model"))); continue
        t = pd.DataFrame(e["rows"])
        print(f"== {label} ({e['when']}, {e.get('model')})"); print(t.to_string(index=False))
        llm = t[t.generated + t.prompt_evaluated > 0]
        print(f"LLM methods together: {llm.wall_s.sum():.0f} s wall, {llm.prompt_evaluated.sum():,} prompt tokens evaluated, "
              f"{llm.generated.sum():,} tokens generated")
        r = entries.get("rates")
        if r and r.get("model") == e.get("model"):
            best = max(v for k, v in r.items() if k.startswith("decode_tok_s_"))
            floor = llm.prompt_evaluated.sum() / r["prefill_tok_s"] + llm.generated.sum() / best
            print(f"at the measured server speeds ({r['prefill_tok_s']} prompt tokens/s, at best {best} tokens/s decoded), "
                  f"these tokens alone take at least {floor:.0f} s")
        bound = sum(r.wall_s / r.n * len(ds.select(lookup("method", r.method).challenge, "test")) for r in llm.itertuples())
        print(f"these {len(llm)} methods on the whole test split (a full 5.2 run) at these seconds per sample: about {bound / 3600:.1f} h "
              "(the full run's larger budgets and slower default model add to it; selector.llm_direct's one-time reading "
              "of the library, counted here in every sample's share, takes from it)")


if __name__ == "__main__":
    main()
