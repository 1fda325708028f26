"""Write and verify the text of the built-in `sage` v2 data set with a local LLM (issue 15, item 5), resumably.

    nice -n 19 .venv/bin/python scripts/sage_v2_text.py --url http://127.0.0.1:8941/v1 [--batch 16] [--limit N]

Every text spec of `data.textgen.v2_text_specs()` (test split first, then dev, then train) goes through
`TextGenerator.run` in batches. Each LLM reply is appended to the cache's pending file and fsynced before it is used, so
the run can be killed at any moment (`kill -9` included) or stopped and continued (`kill -STOP` / `kill -CONT`): a rerun
answers what is done from the cache and goes on. The pending replies are moved into chunk files every `--compact-min`
minutes and at the end (those are what gets committed). After each batch, the results so far (`results.jsonl`) and the
acceptance report with the run's throughput (`acceptance.json`) are rewritten atomically in `--out`
(default `resources/sage_v2/textgen/`). Without `--url` it only replays the cache and writes the report.

The shipped `samples.jsonl` is not touched: `data.sage_v2.write_sage_v2(paraphrase=data.textgen.v2_paraphrase())`
regenerates it from the cache without an LLM.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path


def _now() -> str: return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(url: str | None, out: Path, batch: int = 16, limit: int | None = None, compact_min: float = 10.0,
        retry_s: float = 60.0, model: str | None = None, log=print, specs=None, client=None, specs_file: Path | None = None) -> dict:
    "Run (or replay) the v2 text specs into `out`; the acceptance report written last."
    from sage_bench.data import textgen as TG
    model = model or TG.V2_TEXT_MODEL
    if client is None and url:
        from sage_bench.llm import LLMClient
        # long time limits and several retries: the lead may SIGSTOP the server and this process for a timing window
        client = LLMClient(url, model=model, cache=False, timeout_s=1800, max_retries=8, concurrency=4, max_backoff_s=120)
    if specs is None:
        specs, left = _specs(TG, specs_file, retry_s, log)
    else:
        left = Counter()
    if limit is not None: specs = specs[:limit]
    cache = TG.TextCache(out / "cache")
    gen = TG.TextGenerator(cache, client, model=model, batch_size=batch)
    log(f"{_now()} {len(specs)} text specs ({dict(Counter(sp for sp, _ in specs))}); left out {dict(left)}; cache {len(cache)} entries")
    results, split_of, batches = [], {}, []
    last_compact = time.monotonic()
    for b in range(0, len(specs), batch):
        part = [s for _, s in specs[b:b + batch]]
        for sp, s in specs[b:b + batch]: split_of[s["id"]] = sp
        before, t0 = gen.stats["llm_requests"], time.monotonic()
        while True:
            try:
                res = gen.run(part); break
            except TG.CacheMiss:
                res = None; break                            # replay only: the cache ends here
            except RuntimeError as e:                        # no reply (server down, stopped, timed out): wait, resume from the cache
                log(f"{_now()} batch {b // batch}: {e}; retrying in {retry_s:.0f} s")
                time.sleep(retry_s)
        if res is None:
            log(f"{_now()} the cache holds no more (replay without an LLM): {len(results)} specs replayed")
            break
        results += res
        fresh = gen.stats["llm_requests"] - before
        batches.append({"end": _now(), "specs": len(part), "llm_requests": fresh, "seconds": round(time.monotonic() - t0, 1)})
        _write_report(TG, out, results, split_of, batches, left, gen, len(specs), model)
        acc = sum(r.status == "accepted" for r in res)
        log(f"{_now()} batch {b // batch}: {acc}/{len(res)} accepted, {fresh} LLM requests, {batches[-1]['seconds']} s; "
            f"total {len(results)}/{len(specs)}")
        if time.monotonic() - last_compact >= compact_min * 60:
            cache.compact(); last_compact = time.monotonic()
    cache.compact()
    return _write_report(TG, out, results, split_of, batches, left, gen, len(specs), model)


def _specs(TG, specs_file: Path | None, retry_s: float, log, tries: int = 10):
    """The v2 text specs: read from `specs_file` when it exists (a restart then works on the same list), else collected (a
    few tries: the material may be mid-edit in a shared checkout) and saved there."""
    if specs_file and specs_file.exists():
        d = json.loads(specs_file.read_text(encoding="utf-8"))
        return [tuple(x) for x in d["specs"]], Counter(d["left"])
    for k in range(tries):
        try:
            specs, left = TG.v2_text_specs(); break
        except Exception as e:                      # noqa: BLE001 - a material error mid-edit: wait and read it again
            if k == tries - 1: raise
            log(f"{_now()} collecting the specs failed ({type(e).__name__}: {e}); retrying in {retry_s:.0f} s")
            time.sleep(retry_s)
    if specs_file:
        TG._fsync_write(specs_file, json.dumps({"specs": specs, "left": dict(left)}, ensure_ascii=False))
    return specs, left


def _write_report(TG, out: Path, results, split_of, batches, left, gen, n_specs: int, model: str) -> dict:
    "results.jsonl and acceptance.json (overall, by kind, by split; the run's throughput), written atomically."
    TG.write_results(results, out / "results.jsonl")
    rep = TG.acceptance_report(results)
    rep["by_split"] = {sp: TG.acceptance_report([r for r in results if split_of[r.id] == sp]) for sp in dict.fromkeys(split_of.values())}
    for v in rep["by_split"].values(): v.pop("by_kind", None)
    live = [x for x in batches if x["llm_requests"]]
    secs = sum(x["seconds"] for x in live)
    rep["run"] = {"model": model, "specs_planned": n_specs, "niceness": os.nice(0), "cpus": os.cpu_count(), "specs_done": len(results), "left_out": dict(left),
                  "cache_entries": len(gen.cache), "written_at": _now(),
                  "fresh_batches": len(live), "fresh_specs": sum(x["specs"] for x in live),
                  "fresh_llm_requests": sum(x["llm_requests"] for x in live), "fresh_seconds": round(secs, 1),
                  "texts_per_hour": round(3600 * sum(x["specs"] for x in live) / secs, 1) if secs else None,
                  "batches": batches[-200:]}
    p = out / "acceptance.json"
    TG._fsync_write(p, json.dumps(rep, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return rep


def main(argv=None) -> int:
    from sage_bench.data.textgen import v2_text_dir
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="the LLM server (OpenAI API), e.g. http://127.0.0.1:8941/v1; without it: replay the cache")
    ap.add_argument("--out", type=Path, default=None, help="folder of cache/, results.jsonl, acceptance.json (default resources/sage_v2/textgen)")
    ap.add_argument("--batch", type=int, default=16, help="text specs per batch (default 16)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N specs")
    ap.add_argument("--compact-min", type=float, default=10.0, help="minutes between moves of pending replies into chunks")
    ap.add_argument("--specs", type=Path, default=None, help="a file of the collected specs: read when it exists, else written")
    ap.add_argument("--pid-file", type=Path, default=None, help="append this process id to the file")
    a = ap.parse_args(argv)
    if a.pid_file:
        with open(a.pid_file, "a") as f: f.write(f"{os.getpid()}\n")
    rep = run(a.url, a.out or v2_text_dir(), a.batch, a.limit, a.compact_min, specs_file=a.specs)
    print(json.dumps({k: rep[k] for k in ("specs", "accepted", "dropped", "acceptance_rate")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
