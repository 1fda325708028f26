"""Measurements behind llama-server's settings in `sage_bench.llm_service` (the notebook prints them from the JSON file).

threads: the same request (a ~300-token prompt, 32 tokens decoded whatever the model says) sent in turn to llama-servers
    that differ only in their threads: one thread; two threads whose OpenMP workers wait at a barrier as libgomp does by
    default (spin a while, then sleep), spin briefly (GOMP_SPINCOUNT=10000), or sleep at once (OMP_WAIT_POLICY=PASSIVE).
    The servers run side by side and take turns (the order alternates each round), so each round compares them under the
    same load of the shared machine; the median over rounds of the prompt and decode speeds that llama-server itself
    reports is kept.

prefix_cache: the methods' real requests (recorded and sent as in bench/llm_throughput.py: the samples concurrent, each
    one's calls in order, `--concurrency` requests in flight) sent to llama-servers that differ only in their prompt cache:
    none (--no-cache-prompt), the slots' own prompts only (--cache-ram 0), slots plus the RAM cache (--cache-ram 2048),
    and that plus --cache-reuse 256. The figure is the number of prompt tokens the server evaluated and the number it took
    from its cache (its /metrics counters): counts, not times, so the load of the machine does not move them.

    .venv/bin/python bench/llm_server_settings.py --model qwen2.5-coder-1.5b --only threads --rounds 4
    .venv/bin/python bench/llm_server_settings.py --model smollm2-135m --only prefix_cache
Results are merged into bench/results/llm_server_settings.json (--out).
"""
from __future__ import annotations
import argparse, json, os, statistics, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import httpx  # noqa: E402
from sage_bench.llm_service import (MODELS, llama_server_binary, verify_model)  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def start(args: list[str], port: int, model: str, env: dict | None = None, log: str = "/dev/null") -> subprocess.Popen:
    exe = llama_server_binary()
    if exe is None: sys.exit("llama-server is not built: bash scripts/install_llm.sh llama-server")
    path = verify_model(model) if model in MODELS else Path(model)
    cmd = [str(exe), "--model", str(path), "--alias", Path(model).stem, "--host", "127.0.0.1", "--port", str(port),
           "--metrics", "--seed", "42"] + args
    full = {**os.environ, **(env or {})}
    p = subprocess.Popen(cmd, env={k: v for k, v in full.items() if v is not None}, stdout=open(log, "w"),
                         stderr=subprocess.STDOUT)     # a variable set to None is removed
    p.cmd = cmd
    return p


def wait_up(port: int, p: subprocess.Popen, timeout_s: float = 600):
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if p.poll() is not None: sys.exit(f"llama-server on port {port} exited with code {p.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200: return
        except httpx.HTTPError: pass
        time.sleep(1)
    sys.exit(f"llama-server on port {port} did not come up")


def stop(procs):
    for p in procs: p.terminate()
    for p in procs:
        try: p.wait(20)
        except subprocess.TimeoutExpired:
            p.terminate()
            try: p.wait(10)
            except subprocess.TimeoutExpired: p.kill(); p.wait()


_NO_OMP = {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}
THREADS = {"1 thread": (["--threads", "1", "--threads-batch", "1"], _NO_OMP),
           "2 threads, OpenMP default (spin, then sleep)": (["--threads", "2", "--threads-batch", "2"], _NO_OMP),
           "2 threads, GOMP_SPINCOUNT=10000": (["--threads", "2", "--threads-batch", "2"], {**_NO_OMP, "GOMP_SPINCOUNT": "10000"}),
           "2 threads, OMP_WAIT_POLICY=PASSIVE": (["--threads", "2", "--threads-batch", "2"], {**_NO_OMP, "OMP_WAIT_POLICY": "PASSIVE"})}


def threads(model: str, rounds: int, base_port: int) -> dict:
    procs = {k: start(["--parallel", "1", "--ctx-size", "2048"] + a, base_port + i, model, env)
             for i, (k, (a, env)) in enumerate(THREADS.items())}
    try:
        for i, (k, p) in enumerate(procs.items()): wait_up(base_port + i, p)
        text = (ROOT / "README.md").read_text()[:1200]
        runs = {k: [] for k in procs}
        for r in range(rounds):
            for k in (list(procs) if r % 2 == 0 else list(reversed(procs))):
                port = base_port + list(procs).index(k)
                load = os.getloadavg()[0]
                j = httpx.post(f"http://127.0.0.1:{port}/completion", timeout=1800, json={
                    "prompt": f"{r} {k} {time.time()}\n" + text, "n_predict": 32, "ignore_eos": True,
                    "cache_prompt": False, "temperature": 0}).json()
                t = j["timings"]
                runs[k].append({"prompt_n": t["prompt_n"], "prompt_tok_s": t["prompt_per_second"],
                                "decode_n": t["predicted_n"], "decode_tok_s": t["predicted_per_second"], "load_before": load})
                print(f"round {r + 1}/{rounds} {k:>45}: prompt {t['prompt_per_second']:6.1f} tok/s, decode "
                      f"{t['predicted_per_second']:6.2f} tok/s (load average {load:.1f})", flush=True)
    finally:
        stop(procs.values())
    out = {k: {"prompt_tok_s": statistics.median(x["prompt_tok_s"] for x in v),
               "decode_tok_s": statistics.median(x["decode_tok_s"] for x in v), "runs": v} for k, v in runs.items()}
    return {"model": model, "rounds": rounds, "cpus": os.cpu_count(), "configs": out}


CACHES = {"no prompt cache (--no-cache-prompt)": ["--no-cache-prompt", "--cache-ram", "0"],
          "slots' own prompts (--cache-ram 0)": ["--cache-ram", "0"],
          "slots + RAM cache (--cache-ram 2048)": ["--cache-ram", "2048"],
          "slots + RAM cache + --cache-reuse 256": ["--cache-ram", "2048", "--cache-reuse", "256"]}


def prefix_cache(model: str, samples: int, calls: int, concurrency: int, base_port: int, max_tokens: int) -> dict:
    from llm_throughput import method_requests, run
    reqs, kept = method_requests(None, samples, calls)
    out = {}
    for i, (k, a) in enumerate(CACHES.items()):
        port = base_port + i
        p = start(["--parallel", str(concurrency), "--ctx-size", str(6144 * concurrency), "--threads", str(os.cpu_count())]
                  + a, port, model, {"OMP_WAIT_POLICY": "PASSIVE"})
        try:
            wait_up(port, p)
            # as in a real run: the samples concurrent, each one's calls in order (bench/llm_throughput.py's `run`)
            r = run(f"http://127.0.0.1:{port}/v1", None, reqs, concurrency, max_tokens, "prefix cache")
            s = r["server"]
            out[k] = {"args": a, "prompt_tokens_evaluated": s["prompt_tokens_total"],
                      "prompt_tokens_cached": s["prompt_tokens_cached_total"], "prompt_tokens_sent": r["prompt_tokens"],
                      "wall_s": r["wall_s"]}
            print(f"{k:>40}: {s['prompt_tokens_total']:.0f} prompt tokens evaluated, {s['prompt_tokens_cached_total']:.0f} "
                  f"from the cache, of {r['prompt_tokens']} sent ({r['wall_s']:.0f} s)", flush=True)
        finally:
            stop([p])
    return {"model": model, "n_requests": len(reqs), "kept": kept, "samples": samples, "calls": calls,
            "concurrency": concurrency, "max_tokens": max_tokens, "configs": out}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--only", choices=["threads", "prefix_cache"], default=None)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--port", type=int, default=8941, help="first of the ports used (3 or 4 consecutive)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "llm_server_settings.json"))
    a = ap.parse_args(argv)
    path = Path(a.out)
    data = json.loads(path.read_text()) if path.exists() else {}
    stamp = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_at_start": os.getloadavg()[0]}
    if a.only in (None, "threads"):
        data["threads"] = {**stamp, **threads(a.model, a.rounds, a.port)}
    if a.only in (None, "prefix_cache"):
        data["prefix_cache"] = {**stamp, **prefix_cache(a.model, a.samples, a.calls, a.concurrency, a.port, a.max_tokens)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
