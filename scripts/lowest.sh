#!/usr/bin/env bash
# Prove pyproject.toml's lower bounds true: a throwaway venv (build/lowest-venv) on the given Python
# (default python3; CI uses the oldest supported), every declared requirement installed at its floor
# (scripts/lowest.py writes the constraints), then the lessons' own imports and the offline unit tests that
# need no llama.cpp. `make lowest`, and CI's lowest-versions job, run this.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-${1:-python3}}
venv=${LOWEST_VENV:-build/lowest-venv}

rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
echo "==> $venv on $("$python" --version 2>&1), every requirement at its lowest declared version"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet packaging "tomli; python_version < '3.11'"
"$venv/bin/python" scripts/lowest.py > "$venv/lowest.txt"
# The student set (core, lab), the class server's screen (segno, psutil: no compiler needed, unlike
# the rest of `local`) and the test tools these tests import, all pinned by the constraints.
"$venv/bin/python" -m pip install --quiet --only-binary :all: -c "$venv/lowest.txt" \
  -e ".[lab]" segno psutil pytest pytest-timeout hypothesis pyyaml packaging "tomli; python_version < '3.11'"
# What was installed, of what pyproject names (pip spells some names with `_`, pyproject with `-`).
"$venv/bin/python" -m pip list --format freeze | tr '_' '-' \
  | grep -iE "^($(sed 's/[=;].*//' "$venv/lowest.txt" | paste -sd '|'))==" | paste -sd ' ' | fold -s -w 110 \
  | sed 's/^/    /'
echo "==> The lessons' own imports"
"$venv/bin/python" -c "import akash_nb, akash_nb._widgets, akash_nb._tools.docs, akash_nb._tables"
echo "==> Offline unit tests at the lowest versions"
# These files, without their `live` tests (tests/conftest.py fails any test that starts llama.cpp unmarked):
# the SDK's errors and streams (faults, errors, wire), settings, request preflight, keys, exercises, the
# class server's screen, and a kernel run (render).
AKASH_NB_STATE_DIR=$(mktemp -d) "$venv/bin/python" -m pytest -q -p no:cacheprovider --timeout 120 -m "not live" \
  tests/test_errors.py tests/test_preflight.py tests/test_config.py tests/test_secrets.py tests/test_wire.py \
  tests/test_code.py tests/test_exercises.py tests/test_render.py tests/test_faults.py \
  tests/test_hostile_keys.py tests/test_share.py
