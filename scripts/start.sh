#!/usr/bin/env bash
# Set up everything and run the main job: train on the embedded synthetic cohort if no champion exists,
# create and print a first API key, then serve on port ${PORT:-3000}.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
uv sync --frozen
exec uv run python -m nbrisk.start --port "${PORT:-3000}"
