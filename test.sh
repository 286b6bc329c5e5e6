#!/usr/bin/env bash
# Set up and run every test: lint, types, Python (unit, Redis integration, end-to-end with the
# embedded model), frontend (Vitest) and browser (Playwright on Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh

setup_python
setup_llama_cpp
ensure_redis
if [ -f frontend/package.json ] && [ ! -x /usr/bin/chromium ]; then
  step "installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || die "apt-get install chromium failed"
  else die "browser tests need /usr/bin/chromium: sudo apt-get install chromium"; fi
fi
setup_frontend

step "ruff"
.venv/bin/ruff check services tests bench
.venv/bin/ruff format --check services tests bench
step "mypy (strict on services/)"
.venv/bin/mypy
step "pytest"
.venv/bin/pytest "$@"
if [ -f frontend/package.json ]; then
  step "frontend lint (eslint: typescript-eslint, react-hooks, import boundaries)"
  (cd frontend && npm run lint --silent)
  step "frontend unit tests (vitest)"
  (cd frontend && npm test --silent)
  if grep -q '"e2e"' frontend/package.json; then
    step "browser tests (playwright-core on /usr/bin/chromium)"
    (cd frontend && npm run e2e --silent)
  fi
fi
step "all tests passed"
