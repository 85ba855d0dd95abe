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
uv run pytest -m slow -p no:cacheprovider --durations=15
