"""Record how long a section 5.2 run took, from the run's own files, in `bench/results/section_5_2_runs.json`.

The README and the section notebook quote the measured run times of section 5.2 from this file, never from prose. After
a run (`bash scripts/main.sh`, or `sage-bench run --section 5.2 [--quick]`), point this script at the home the run wrote
to and say how it was run; it reads the result files (per method: samples, samples predicted in that run, wall seconds,
the LLM that answered) and the section's wall time from `summary.txt`, and adds one entry:

    .venv/bin/python bench/section_time.py --home /tmp/q52 --label "quick, fresh clone, empty caches" \
        --command "bash scripts/main.sh" [--total-s 870] [--note "machine otherwise idle"]

`--total-s` is the whole command's wall time where it was measured (setup, server start and report included). An
entry with the same label is replaced. `--print` prints the file's entries as tables (what the notebook shows).
"""
from __future__ import annotations
import argparse, json, os, platform, re, sys, time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
RESULTS = Path(__file__).parent / "results" / "section_5_2_runs.json"


def entry_from_home(home: Path) -> dict:
    "The run recorded under `home` (its `.sage/benchmark/paper1/section_5_2_main`)."
    from sage_bench.experiments.main_eval import RESULT_FILES, run_time_table
    out = home / ".sage" / "benchmark" / "paper1" / "section_5_2_main"
    res = {ch: json.loads((out / f).read_text()) for ch, f in RESULT_FILES.items() if (out / f).exists()}
    if not res: raise SystemExit(f"no section 5.2 result files under {out}")
    m = re.search(r"wall time: (\d+) s", (out / "summary.txt").read_text()) if (out / "summary.txt").exists() else None
    table = run_time_table(res)
    prov = next(iter(res.values())).get("provenance") or {}
    cfg, git = prov.get("config") or {}, prov.get("git") or {}
    return {"section_wall_s": int(m.group(1)) if m else None, "quick": cfg.get("quick"), "samples": cfg.get("samples"),
            "llm_samples": cfg.get("llm_samples"), "models": sorted(set(table["LLM"]) - {""}),
            "commit": git.get("commit"), "dirty": git.get("dirty"), "methods": table.to_dict(orient="records")}


def show(entries: list[dict]) -> None:
    import pandas as pd
    for e in entries:
        print(f"== {e['label']} ({e['when']}, {e['cpus']} CPUs, commit {str(e.get('commit'))[:7]}, model {', '.join(e['models']) or '-'})")
        print(f"   command: {e['command']}" + (f"; whole command {e['total_s']:.0f} s" if e.get("total_s") else ""))
        print(f"   section wall time: {e['section_wall_s']} s; LLM methods on {e['llm_samples'] or 'all'} samples per challenge"
              + (f"; {e['note']}" if e.get("note") else ""))
        print(pd.DataFrame(e["methods"]).to_string(index=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", help="the SAGE_BENCH_HOME (or checkout) the run wrote to")
    ap.add_argument("--label"); ap.add_argument("--command", default="sage-bench run --section 5.2")
    ap.add_argument("--total-s", type=float, default=None); ap.add_argument("--note", default="")
    ap.add_argument("--print", action="store_true", help="print the recorded runs")
    a = ap.parse_args(argv)
    entries = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if a.home:
        if not a.label: ap.error("--label is required with --home")
        e = {"label": a.label, "command": a.command, "total_s": a.total_s, "note": a.note,
             "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cpus": os.cpu_count(), "machine": platform.machine(),
             **entry_from_home(Path(a.home))}
        entries = [x for x in entries if x["label"] != a.label] + [e]
        RESULTS.write_text(json.dumps(entries, indent=1, default=str) + "\n")
        print(f"recorded {a.label!r} in {RESULTS}")
    if a.print or not a.home: show(entries)


if __name__ == "__main__":
    main()
