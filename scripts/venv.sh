#!/usr/bin/env bash
# Create or update .venv with everything the lessons and tests need, printing progress while it works.
# With the embedded model (the local extra), its engine comes first: llama.cpp's server prebuilt in the
# xllamacpp wheel, installed from scripts/engine.lock with --require-hashes (seconds, nothing compiled).
# Then `akash-nb engine --build` checks the engine and fetches the model file: where no wheel fits this
# platform or CPU (AVX2) it compiles llama-server instead (5 to 8 minutes on 2 cores, once per machine,
# into the user's cache folder; akash_nb/_engine/builds.py gives the order). Nothing is compiled or fetched when the
# lessons use another provider (scripts/provider.sh), nor for the student set (EXTRAS=lab: `make
# student`), which installs wheels only (--only-binary), so a student's laptop needs no compiler.
set -euo pipefail
venv=${VENV:-.venv}
python=${PYTHON:-python3}
extras=${EXTRAS:-local,lab,site,dev}
stamp=${STAMP:-"$venv/.akash-nb-installed"}

if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "==> Creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip

case ",$extras," in
  *,local,*,dev,* | *,dev,*,local,*) what="the embedded model, JupyterLab and the test tools"; binary=() ;;
  *,local,*) what="the embedded model and JupyterLab (the learner set: no test tools)"; binary=() ;;
  *) what="the lessons' runtime and JupyterLab only (wheels, nothing to compile)"; binary=(--only-binary :all:) ;;
esac
echo "==> Installing akash-nb with $what."
started=$(date +%s)
if [[ ",$extras," == *,local,* ]]; then
  if "$venv/bin/python" -m pip install --quiet --progress-bar off --require-hashes --only-binary :all: \
      --no-deps -r scripts/engine.lock 2>/dev/null; then
    echo "    the prebuilt engine, $(grep -m1 -o 'xllamacpp==[^ ]*' scripts/engine.lock), hash-checked: nothing to compile."
  else
    echo "    no prebuilt engine (xllamacpp) for this platform: llama.cpp will be compiled once instead."
  fi
fi
(
  # A heartbeat, so a quiet compile never looks like a hang.
  while sleep 30; do
    echo "    ... still installing ($(( $(date +%s) - started )) s so far)"
  done
) &
heartbeat=$!
trap 'kill $heartbeat 2>/dev/null || true' EXIT
# nproc is GNU coreutils' (Linux); macOS answers through sysctl.
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)} \
  "$venv/bin/python" -m pip install --progress-bar off ${binary[@]+"${binary[@]}"} -e ".[$extras]" 2>&1 \
  | grep -E --line-buffered "^(Collecting|  Building wheel for|Successfully|ERROR|error:)" || true
status=${PIPESTATUS[0]}
kill $heartbeat 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  echo "==> Installing failed (pip exit $status); the lines above say why." >&2
  exit "$status"
fi
echo "==> Installed in $(( $(date +%s) - started )) s."
if [[ ",$extras," == *,local,* ]]; then
  provider=$(bash scripts/provider.sh)
  if [ "$provider" = local ]; then
    "$venv/bin/akash-nb" engine --build
  else
    echo "==> Not building the embedded model: the lessons use $provider (built on first use if you unset it)."
  fi
fi
touch "$stamp"
