#!/usr/bin/env bash
# Set up everything (uv, the locked environment) and run the whole test suite: fast tests, then the slow
# end-to-end ones (real MLflow, a real `bentoml serve`, real PDFs).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
uv sync --frozen
uv run ruff check .
uv run ruff format --check .
bash scripts/typecheck.sh   # mypy on the built wheel (level: pyproject.toml [tool.mypy])
uv run pytest -n 2 -p no:cacheprovider --durations=15
# System packages of the slow suite, installed here when missing (as root on CI), else named and the run stops:
# - the browser tests (tests/serving/browser) drive Debian's Chromium with Playwright (the Python package is in
#   uv.lock; Playwright's own browser download is not used), with a CJK font for the Simplified Chinese page;
# - the team tests (tests/cluster) start a throwaway PostgreSQL server (Debian's postgresql-15 binaries).
missing=()
if [ -z "${NBRISK_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium fonts-wqy-zenhei)
fi
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql-15)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "scripts/test.sh: the slow suite needs these system packages: ${missing[*]}" >&2
    echo "  Install them as root (Debian/Ubuntu): apt-get install -y ${missing[*]}" >&2
    echo "  (or set NBRISK_CHROMIUM to the path of a Chromium or Chrome binary)." >&2
    exit 1
  fi
fi
uv run pytest -m slow -p no:cacheprovider --durations=15
