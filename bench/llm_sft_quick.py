"""A LoRA SFT run of the CPU quick path end to end, and its measurements (sage_bench.training.llm_sft).

Trains an adapter on the sage train split (the LLM methods' own requests with gold JSON answers), converts it with
llama.cpp's convert_lora_to_gguf.py, serves base + adapter with llama-server on --port, scores the three SFT methods
(timing.llm_based, selector.llm_rerank, planner.llm_based; quick-path configuration) with the engine on `--samples` test
samples per challenge, then the untrained base the same way on --port + 1, and writes everything to --out: the run's
record (losses before/after on a seeded probe of the training examples and on dev examples, the loss curve, the
examples used and left out, wall time of each stage, package versions) and both evaluations' metrics.

    nice -n 19 .venv/bin/python bench/llm_sft_quick.py --per-challenge 6 --epochs 3 --samples 20

Measured on a shared, busy 2-core machine (load average 6-8 from other jobs while it ran, this one at nice 19): wall
times are upper bounds of what an idle machine takes. With 20 test samples per challenge the metrics are anecdotes,
not a comparison: the paper's comparison needs the whole test split and paired tests.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from sage_bench.training.llm_sft import SFTConfig, run_sft, serve_run, evaluate_llm, SFT_PORT  # noqa: E402
from sage_bench.llm_service import start_llm_service, stop_llm_service  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _metrics(ev: dict) -> dict:
    return {ch: {"n": r.metrics.get("n"), "error_rate": r.metrics.get("error_rate"),
                 "metrics": {k: v.get("value") for k, v in r.metrics["metrics"].items()}} for ch, r in ev.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--per-challenge", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=20, help="test samples per challenge")
    ap.add_argument("--port", type=int, default=SFT_PORT)
    ap.add_argument("--work", default=None, help="where the adapter and the records go (default: a folder under /tmp)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "llm_sft_quick.json"))
    a = ap.parse_args(argv)
    work = a.work or f"/tmp/sage-bench-llm-sft-{os.getpid()}"
    t0 = time.time()
    with open("/proc/loadavg") as f: load0 = f.read().split()[:3]
    rec = run_sft(SFTConfig(model=a.model, per_challenge=a.per_challenge, epochs=a.epochs), output_dir=work, log_every=1,
                  dev_per_challenge=3, loss_examples=12)
    res = {"command": "bench/llm_sft_quick.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "run": {k: v for k, v in rec.items() if not k.startswith("_") and k not in ("path", "adapter", "base_config", "lora_gguf")},
           "load_average_at_start": load0}
    res["run"]["examples"] = {k: v for k, v in rec["examples"].items() if k not in ("ids", "loss_probe")}
    try:
        info = serve_run(rec, a.port)
        t = time.time()
        res["tuned"] = _metrics(evaluate_llm({"base_urls": info["url"], "model": info["client_model"]}, f"{a.model}+lora",
                                             output_dir=work, samples=a.samples))
        res["tuned_eval_s"] = round(time.time() - t, 1)
    finally:
        stop_llm_service(a.port)
    try:
        b = start_llm_service(a.model, port=a.port + 1)
        t = time.time()
        res["base"] = _metrics(evaluate_llm({"base_urls": b["url"], "model": b["model"]}, a.model, output_dir=work, samples=a.samples))
        res["base_eval_s"] = round(time.time() - t, 1)
    finally:
        stop_llm_service(a.port + 1)
    res["total_s"] = round(time.time() - t0, 1)
    res["note"] = ("quick CPU path on a shared 2-core machine at nice 19 (other jobs running): times are upper bounds; "
                   f"{a.samples} test samples per challenge (the same samples for tuned and base): anecdotal, no test")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ("tuned", "base")}, indent=1))
    return res


if __name__ == "__main__":
    main()
