#!/usr/bin/env bash
# Set up (idempotent) and run the whole system on this machine; Ctrl-C stops what it started.
#   ./start.sh [--port 8080] [--host 127.0.0.1] [--model embedded] [--engine auto] [--device auto] [--auditors 1] [--no-setup]
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh

PORT="${UQ_PORT:-8080}"; HOST="${UQ_HOST:-127.0.0.1}"; MODEL="${UQ_MODEL:-embedded}"; DEVICE="${UQ_DEVICE:-auto}"
ENGINE="${UQ_ENGINE:-auto}"
AUDITORS=1; SETUP=1; HEALTH_TIMEOUT=600

usage() {
  cat <<USAGE
Usage: ./start.sh [options]

Sets up everything it needs (virtualenv, Python dependencies, the embedded model, the dashboard build;
skipped when up to date), starts Redis when none answers at \$UQ_REDIS_URL, then starts the services
in order — generator, auditor(s), alerter, recorder, gateway — each logging to logs/<service>.log,
waits until /health is green and prints the dashboard URL. Ctrl-C stops every process it started.

Options:
  --port N        gateway port (default 8080; env UQ_PORT)
  --host ADDR     gateway bind address (default 127.0.0.1; env UQ_HOST). A non-loopback address
                  requires API keys (UQ_API_KEYS) unless UQ_AUTH=off.
  --model NAME    model for the generator: "embedded" (SmolLM2-135M-Instruct, no download),
                  a Hugging Face id or a local path (default embedded; env UQ_MODEL)
  --engine NAME   auto (default: llama.cpp for the embedded model and .gguf files, transformers for
                  the rest), llama.cpp (GGUF files directly, ~2.8x faster on a CPU; set-up builds
                  llama-cpp-python from source once per machine, about 5 min), transformers, openai
                  (an upstream OpenAI-compatible server: set UQ_UPSTREAM_URL), or package.module:Class
                  (env UQ_ENGINE). With auto, a llama.cpp that does not build falls back to transformers.
  --device DEV    auto, cpu, cuda or cuda:N (default auto; env UQ_DEVICE)
  --auditors N    auditor replicas (default 1)
  --no-setup      skip the set-up steps
  -h, --help      this help

Every other setting is an environment variable UQ_*; see docs/operations.md.
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --host) HOST="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --engine) ENGINE="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --auditors) AUDITORS="$2"; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see ./start.sh --help)" >&2; exit 2 ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "--port must be 1-65535, got '$PORT'"
[[ "$AUDITORS" =~ ^[0-9]+$ ]] && [ "$AUDITORS" -ge 1 ] || die "--auditors must be a positive number, got '$AUDITORS'"

port_holder() {  # prints "name (pid N)" of the process listening on TCP port $1, or nothing
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -1
}
port_busy() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }

step "checking prerequisites"
command -v python3 >/dev/null || die "python3 not found: install Python 3.11+"
[ -f frontend/package.json ] && { command -v node >/dev/null || die "node not found: install Node.js 20+ (Debian: apt-get install nodejs npm)"; }
if port_busy "$PORT"; then
  holder=$(port_holder "$PORT")
  die "port $PORT is in use by ${holder:-another process} — stop it or pick another port with --port"
fi

if [ "$SETUP" = 1 ]; then
  setup_python
  if [ "$ENGINE" = "llama.cpp" ]; then
    setup_llama_cpp
  elif [ "$ENGINE" = "auto" ] && [[ "$MODEL" == embedded || "$MODEL" == SmolLM2-135M-Instruct || "$MODEL" == *.gguf ]] \
      && [[ "$DEVICE" == auto || "$DEVICE" == cpu ]]; then
    ( setup_llama_cpp ) || echo "    llama.cpp is not available: the embedded model runs on the transformers engine (slower)"
  fi
  setup_frontend
fi
[ -x "$PY" ] || die "no virtualenv at .venv: run ./start.sh without --no-setup once"
ensure_redis

mkdir -p logs
export UQ_MODEL="$MODEL" UQ_ENGINE="$ENGINE" UQ_DEVICE="$DEVICE" UQ_PORT="$PORT" UQ_HOST="$HOST" UQ_LOG_FORMAT="${UQ_LOG_FORMAT:-json}"
PIDS=(); NAMES=()

stop_all() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    step "stopping ${#PIDS[@]} processes"
    # reverse order: the gateway first, the generator last
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
    for _ in $(seq 100); do
      alive=0; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break; sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  echo "stopped."
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

launch() {  # launch NAME LOGNAME [ENV=VALUE...]
  local name="$1" logname="$2"; shift 2
  [ -f "services/$name/__main__.py" ] || return 0
  env "$@" "$PY" -m "services.$name" >"logs/$logname.log" 2>&1 &
  PIDS+=($!); NAMES+=("$logname")
  printf '    started %-10s pid %-7s log: logs/%s.log\n' "$logname" "$!" "$logname"
}

report_dead() {
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      printf '\033[31m%s exited.\033[0m Last lines of logs/%s.log:\n' "${NAMES[$i]}" "${NAMES[$i]}" >&2
      tail -n 20 "logs/${NAMES[$i]}.log" >&2
      return 0
    fi
  done
  return 1
}

step "starting services"
launch generator generator UQ_INSTANCE="generator-1"
for n in $(seq "$AUDITORS"); do launch auditor "auditor-$n" UQ_INSTANCE="auditor-$n"; done
launch alerter alerter UQ_INSTANCE="alerter-1"
launch recorder recorder UQ_INSTANCE="recorder-1"
launch gateway gateway UQ_INSTANCE="gateway-1"

URL="http://$( [ "$HOST" = 0.0.0.0 ] && echo 127.0.0.1 || echo "$HOST" ):$PORT"
step "waiting for $URL/health (the first start loads and caches the model: up to a minute or two)"
start=$(date +%s); last=""
while true; do
  report_dead && die "a service died during start-up (see above)"
  if [ -f services/gateway/__main__.py ]; then
    code=$(curl -s -o /tmp/uq-health.$$ -w '%{http_code}' "$URL/health" 2>/dev/null || true)
    [ "$code" = 200 ] && break
  else
    "$PY" -c "import asyncio,sys; from redis.asyncio import Redis; from services.common.health import read_heartbeats; from services.common.settings import CommonSettings as S; s=S(); sys.exit(0 if asyncio.run(read_heartbeats(Redis.from_url(s.redis_url), s)) else 1)" && break
  fi
  line=$(tail -n 1 logs/generator.log 2>/dev/null | "$PY" -c "import sys,json
try: print(json.loads(sys.stdin.read()).get('msg',''))
except Exception: pass" 2>/dev/null || true)
  if [ -n "$line" ] && [ "$line" != "$last" ]; then echo "    generator: $line"; last="$line"; fi
  [ $(( $(date +%s) - start )) -gt $HEALTH_TIMEOUT ] && die "not healthy after ${HEALTH_TIMEOUT}s; $URL/health says: $(cat /tmp/uq-health.$$ 2>/dev/null)"
  sleep 1
done
rm -f /tmp/uq-health.$$

printf '\n\033[32mReady.\033[0m Dashboard: \033[1m%s/\033[0m   API docs: %s/docs   Health: %s/health\n' "$URL" "$URL" "$URL"
echo "Logs in logs/. Press Ctrl-C to stop."
while true; do
  report_dead && die "a service died; everything else is being stopped"
  sleep 2
done
