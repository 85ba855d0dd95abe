#!/usr/bin/env bash
# Type check (mypy) of the package as it ships: the wheel's files, under their import names (nbrisk.features, ...).
# An editable install maps the top-level folders to nbrisk.* with an import hook that mypy does not run, so mypy
# would see `features.record` where the code says `nbrisk.features.record`. Checking the built wheel instead gives
# the real module names; error paths are mapped back to the repository's folders. Level: pyproject's [tool.mypy]
# (mypy defaults, third-party modules without types ignored, pydantic plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/typecheck
rm -rf "$out"
uv build --quiet --wheel --out-dir "$out/dist"
uv run python -m zipfile -e "$out"/dist/nbrisk-*.whl "$out/src"
status=0
MYPYPATH="$out/src" uv run mypy -p nbrisk "$@" >"$out/report.txt" 2>&1 || status=$?
sed -E -e "s#^$out/src/nbrisk/(features|models|training|serving|reports|configs)/#\1/#" \
       -e "s#^$out/src/nbrisk/#nbrisk/#" "$out/report.txt"
exit "$status"
