#!/usr/bin/env bash
# Which provider the lessons will use, told from the environment and ./.env alone (before anything is
# installed), the way akash_nb/_core/config.py infers it: prints "local" when they need the embedded model,
# otherwise the provider named or the variable that points them elsewhere. `make lab` uses it so a student
# connecting to a class server or AkashML installs the student set only and never compiles llama.cpp.
set -euo pipefail
value() {  # $1: a variable's value, from the environment first, then the last line of ./.env setting it
  if [ -n "${!1:-}" ]; then printf '%s' "${!1}"; return; fi
  [ -f .env ] || return 0
  sed -nE "s/^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=[[:space:]]*['\"]?([^'\"#[:space:]]+).*/\\2/p" .env \
    | tail -n 1
}
provider=$(value AKASH_NB_PROVIDER)
if [ -n "$provider" ]; then
  echo "$provider"
  exit 0
fi
for name in AKASH_NB_BASE_URL AKASHML_API_KEY AKASH_API_KEY; do
  if [ -n "$(value "$name")" ]; then
    echo "$name"
    exit 0
  fi
done
echo local
