#!/usr/bin/env bash
# Install everything sage-bench needs on a fresh machine (Debian, Python 3.11). Idempotent: a
# second run checks what is there and installs nothing it already has.
#   - a virtual environment .venv with the package (editable), its dev tools and the LoRA SFT stack (extra 'sft')
#   - torch 2.13.0 pinned first, so no CUDA build is pulled on a CPU machine
#   - the Jupyter kernel "sage-bench" that papermill runs the section notebooks with
#   - the CPU LLM stack (llama.cpp server + a pinned, sha256-checked GGUF model): scripts/install_llm.sh
#   - pandoc, xelatex and poppler-utils for the paper (Debian packages), when run as root
# Environment: SAGE_BENCH_NO_LLM=1 skips the LLM stack, SAGE_BENCH_NO_TEX=1 skips the paper toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
key=$(cat settings.ini setup.py scripts/setup.sh | sha256sum | cut -c1-16)
stamp=.venv/.sage-bench-installed-$key
if [ ! -f "$stamp" ]; then
  echo "[setup] installing Python packages into .venv"
  $VPY -m pip install -q --upgrade pip
  $VPY -m pip install -q torch==2.13.0            # the CPU build; any other request pulls CUDA wheels
  $VPY -m pip install -q -e ".[dev,sft]"       # sft: peft, gguf, accelerate (LoRA SFT of the GGUF models)
  $VPY -m pip check >/dev/null || { echo "[setup] pip check failed"; $VPY -m pip check; exit 1; }
  rm -f .venv/.sage-bench-installed-*
  touch "$stamp"
else
  echo "[setup] Python packages already installed"
fi

if [ ! -f .venv/share/jupyter/kernels/sage-bench/kernel.json ]; then
  $VPY -m ipykernel install --sys-prefix --name sage-bench --display-name "sage-bench" >/dev/null
  echo "[setup] registered the Jupyter kernel 'sage-bench'"
fi

if [ "${SAGE_BENCH_NO_LLM:-0}" != "1" ] && [ -f scripts/install_llm.sh ]; then
  bash scripts/install_llm.sh
fi

if [ "${SAGE_BENCH_NO_TEX:-0}" != "1" ]; then
  need=()
  command -v pandoc >/dev/null || need+=(pandoc)
  command -v xelatex >/dev/null || need+=(texlive-xetex texlive-latex-recommended texlive-fonts-recommended texlive-latex-extra texlive-plain-generic lmodern)
  command -v pdftotext >/dev/null || need+=(poppler-utils)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ]; then
      echo "[setup] installing the paper toolchain: ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
      echo "[setup] not root: install these Debian packages for the paper build: ${need[*]}"
    fi
  fi
fi
echo "[setup] done"
