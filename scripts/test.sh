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
# The browser tests (tests/serving/browser, slow suite) drive Debian's Chromium with Playwright (the Python package
# is in uv.lock; Playwright's own browser download is not used). Installed here when missing, as root on CI, with a
# CJK font so that the Simplified Chinese page renders.
if [ -z "${NBRISK_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-zenhei
  else
    echo "scripts/test.sh: the browser tests need Chromium at /usr/bin/chromium." >&2
    echo "  Install it as root: apt-get install -y chromium fonts-wqy-zenhei (Debian/Ubuntu)," >&2
    echo "  or set NBRISK_CHROMIUM to the path of a Chromium or Chrome binary." >&2
    exit 1
  fi
fi
uv run pytest -m slow -p no:cacheprovider --durations=15
