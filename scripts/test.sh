#!/usr/bin/env bash
# The test command: install everything (idempotent), lint (ruff), then run the notebook tests (nbdev_test) and the
# test suite (pytest tests/), which includes end-to-end runs against a real local LLM server and quick papermill runs
# of the paper sections.
#   bash scripts/test.sh           everything (lint, notebook tests, the whole suite)
#   bash scripts/test.sh --fast    lint, notebook tests and the unit tests: no LLM server, no section runs, no paper
#                                  build (pytest -m "not llm and not sections and not slow"); under 5 minutes on 2 cores
#   bash scripts/test.sh --rest    only what --fast leaves out (pytest -m "llm or sections or slow"); CI runs --fast, then --rest
# Further arguments go to pytest (e.g. -k timing, -x). SAGE_BENCH_SKIP_SETUP=1 skips scripts/setup.sh.
# Markers: tests/conftest.py and pyproject.toml ([tool.pytest.ini_options]).
set -euo pipefail
cd "$(dirname "$0")/.."
tier=all
case "${1:-}" in
  --fast) tier=fast; shift ;;
  --rest) tier=rest; shift ;;
esac
# the fast tier needs neither the LLM stack nor the paper toolchain, so its setup installs neither
if [ "$tier" = fast ]; then export SAGE_BENCH_NO_LLM="${SAGE_BENCH_NO_LLM:-1}" SAGE_BENCH_NO_TEX="${SAGE_BENCH_NO_TEX:-1}"; fi
if [ "${SAGE_BENCH_SKIP_SETUP:-0}" != "1" ]; then bash scripts/setup.sh; fi
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# the tests' own cache (LLM replies, embeddings): a later `bash scripts/main.sh`, which reads .sage/cache, never
# replays replies the tests recorded, so its timings are its own
export SAGE_BENCH_CACHE="${SAGE_BENCH_CACHE:-$PWD/.sage/test-cache}"
if [ "$tier" = fast ]; then
  # no LLM server: the real-server tests are deselected, not skipped
  export SAGE_BENCH_TEST_LLM=0
else
  # the real local LLM server is started once for the whole pytest session (tests/conftest.py)
  export SAGE_BENCH_TEST_LLM="${SAGE_BENCH_TEST_LLM:-1}"
fi
if [ "$tier" != rest ]; then
  echo "[test] ruff check"
  ruff check
  echo "[test] nbdev_test (library notebooks)"
  nbdev_test --path nbs/api --n_workers 2
fi
case "$tier" in
  fast) echo "[test] pytest tests/ (fast tier)"; mark=(-m "not llm and not sections and not slow") ;;
  rest) echo "[test] pytest tests/ (LLM server, section runs, slow tests)"; mark=(-m "llm or sections or slow") ;;
  *)    echo "[test] pytest tests/"; mark=() ;;
esac
pytest tests/ -q -rs --durations=15 "${mark[@]}" "$@"
