"""`refs="id"` against `refs="number"` for one LLM method, on the same samples, in one run.

Each LLM method can name the tools it was shown by their ids or by the numbers printed before them (`ToolRefs`). This
runs the method both ways on the same seeded `sage` test samples, one request at a time, the two arms alternating per
sample (id first on even samples, number first on odd ones) so that a drift of the machine's load falls on both; it
prints the wall time, the completion tokens and LLM calls of each arm, and the ratio number / id. Nothing is cached
(each run uses a fresh cache folder). `--json PATH` appends the figures to a JSON list.

    .venv/bin/python bench/refs_ab.py selector.llm_rerank --samples 8 --config '{"m": 10}' --url http://127.0.0.1:8901/v1
"""
from __future__ import annotations
import argparse, json, os, statistics, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("method"); ap.add_argument("--samples", type=int, default=8); ap.add_argument("--config", default="{}")
    ap.add_argument("--url", default=None); ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.url: os.environ["SAGE_BENCH_LLM_URL"] = a.url
    os.environ["SAGE_BENCH_CACHE"] = tempfile.mkdtemp(prefix="refs_ab_")
    from sage_bench.registry import get_dataset, get_method, lookup
    from sage_bench.engine import choose_samples
    from sage_bench.methods.base import blind
    ds, ch = get_dataset("sage"), lookup("method", a.method).challenge
    samples = choose_samples(ds.select(ch, "test"), a.samples, 42)
    ms = {r: get_method(a.method, refs=r, **json.loads(a.config)) for r in ("id", "number")}
    for m in ms.values(): m.fit(ds.select(ch, "train"), ds)
    runs = {"id": [], "number": []}
    for i, s in enumerate(samples):
        for r in (("id", "number") if i % 2 == 0 else ("number", "id")):
            t0 = time.perf_counter()
            o = ms[r].predict_batch([blind(s)], [ds.candidates(s)])[0]
            runs[r].append({"s": time.perf_counter() - t0, "tokens": o.completion_tokens, "calls": o.llm_calls, "ok": o.error is None})
    out = {"method": a.method, "config": json.loads(a.config), "samples": len(samples), "model": ms["id"].describe().get("llm_model"),
           "when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}
    for r, v in runs.items():
        out[r] = {"wall_s": round(sum(x["s"] for x in v), 1), "median_s": round(statistics.median(x["s"] for x in v), 2),
                  "completion_tokens": sum(x["tokens"] for x in v), "llm_calls": sum(x["calls"] for x in v), "answered": sum(x["ok"] for x in v)}
        print(f"{a.method} refs={r}: {out[r]}")
    out["ratio_wall_number_over_id"] = round(out["number"]["wall_s"] / max(out["id"]["wall_s"], 1e-9), 2)
    print(f"number / id wall: {out['ratio_wall_number_over_id']}")
    if a.json:
        prev = json.load(open(a.json)) if os.path.exists(a.json) else []
        json.dump(prev + [out], open(a.json, "w"), indent=1)
    return out


if __name__ == "__main__":
    main()
