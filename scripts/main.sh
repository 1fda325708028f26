#!/usr/bin/env bash
# The main job: install everything (idempotent), start the local LLM server if none answers,
# run paper section 5.2 in quick mode (every method, LLM methods included, on the sage test split),
# print the results tables and rebuild figures and tables. Extra arguments go to `sage-bench run`
# (for example: --section all, or without --quick by setting SAGE_BENCH_FULL=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
quick=--quick; [ "${SAGE_BENCH_FULL:-0}" = "1" ] && quick=
# the model a server started here runs: quick mode takes the 0.5B model (12 samples of every LLM method; the measured
# quick runs are in bench/results/section_5_2_runs.json: over the 10 minutes aimed at on 2 cores so far), a full run
# the default CPU model (1.5B); SAGE_BENCH_MAIN_MODEL names another. A server that
# already answers on the port is used as it is (every result records the model that answered).
model="${SAGE_BENCH_MAIN_MODEL:-}"
[ -n "$model" ] || { [ -n "$quick" ] && model=qwen2.5-coder-0.5b || model=qwen2.5-coder-1.5b; }
started=0
if [ "${SAGE_BENCH_NO_LLM:-0}" != "1" ]; then
  if ! sage-bench llm status >/dev/null 2>&1; then
    sage-bench llm start --model "$model" && started=1
  fi
fi
cleanup() { if [ "$started" = "1" ]; then sage-bench llm stop || true; fi; }
trap cleanup EXIT
sage-bench run --section 5.2 $quick "$@"
sage-bench report
