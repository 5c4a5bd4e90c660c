#!/usr/bin/env bash
# Install the Debian packages listed in tools/system-packages.txt (one name per line) that are
# missing: the cross compilers and emulators of the board interpreters (tools/interpreters.py)
# and what other tests need. As root with apt-get (CI): `apt-get update` once, then install.
# Elsewhere it names the missing packages and exits 0: `make test` then runs what it can, and
# tools/interpreters.py fails under CI=true for any board it cannot build.
set -euo pipefail
list="$(dirname "$0")/system-packages.txt"
wanted=()
while read -r pkg _; do
  case "$pkg" in "" | "#"*) ;; *) wanted+=("$pkg") ;; esac
done <"$list"
if ! command -v dpkg-query >/dev/null; then
  echo "system packages: no dpkg here; the board interpreters need the equivalents of: ${wanted[*]}" >&2
  exit 0
fi
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "system packages: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "system packages missing: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
fi
