#!/usr/bin/env bash
# The GPU path (issue 13, item 9): on a machine with an NVIDIA GPU, serve an instruct model with vLLM, run
# section 5.2 in full through the unchanged methods, and compare our client's throughput (bench/llm_throughput.py,
# the methods' real prompts) with `vllm bench serve` (random prompts of the same length) on the same server.
#
#   bash scripts/gpu_check.sh                      # Qwen/Qwen2.5-7B-Instruct from the Hugging Face hub
#   SAGE_BENCH_GPU_MODEL=/models/qwen7b bash scripts/gpu_check.sh   # a local copy (a machine without a network)
#
# vLLM goes into its own environment (.venv-vllm: it pins a CUDA build of torch); the project's own .venv stays the
# CPU one. Everything it measures lands in $OUT (default .sage/gpu_check): nvidia-smi.txt, vllm.log, the 5.2 results
# under results/, throughput_ours.json, vllm_bench.json and timings.txt. Not yet run on a GPU machine: no GPU was
# lent to the sessions that wrote it (see nbs/api/21_llm_service.ipynb, "The GPU path").
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${SAGE_BENCH_GPU_MODEL:-Qwen/Qwen2.5-7B-Instruct}"
PORT="${SAGE_BENCH_GPU_PORT:-8911}"
OUT="${OUT:-.sage/gpu_check}"
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: this is for a GPU machine" >&2; exit 2; }
nvidia-smi > "$OUT/nvidia-smi.txt"
SAGE_BENCH_NO_TEX=1 SAGE_BENCH_NO_LLM=1 bash scripts/setup.sh
if [ ! -x .venv-vllm/bin/vllm ]; then
  python3 -m venv .venv-vllm
  .venv-vllm/bin/pip install -q "vllm==${SAGE_BENCH_VLLM_VERSION:-0.33.0}"
fi
export PATH="$PWD/.venv/bin:$PATH" SAGE_BENCH_CACHE="$OUT/cache"
URL="http://127.0.0.1:$PORT/v1"
# the project's own start command, with vLLM on the PATH (it runs `vllm serve MODEL --port ... --seed 42`)
PATH="$PWD/.venv-vllm/bin:$PATH" sage-bench llm start --backend vllm --model "$MODEL" --port "$PORT" --timeout 1800
trap 'sage-bench llm stop --port "$PORT" || true' EXIT
{
  echo "model=$MODEL"
  t0=$(date +%s)
  sage-bench run --section 5.2 --llm-base-url "$URL" --output-dir "$OUT/results"
  echo "section_5_2_full_wall_s=$(( $(date +%s) - t0 ))"
} 2>&1 | tee "$OUT/timings.txt"
python bench/llm_throughput.py --url "$URL" --samples 8 --calls 4 --concurrency 8,32 --repeats 2 --json "$OUT/throughput_ours.json"
.venv-vllm/bin/vllm bench serve --backend openai-chat --endpoint /v1/chat/completions --base-url "http://127.0.0.1:$PORT" \
  --model "$MODEL" --dataset-name random --random-input-len 1500 --random-output-len 64 --num-prompts 256 \
  --max-concurrency 32 --seed 42 --save-result --result-dir "$OUT" --result-filename vllm_bench.json
echo "gpu_check: done; results in $OUT"
