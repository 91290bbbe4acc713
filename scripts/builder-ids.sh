#!/usr/bin/env bash
# Gives the user that runs Shelf's builder (default: the caller) a range of subordinate ids in
# /etc/subuid and /etc/subgid, which newuidmap/newgidmap (Debian's uidmap) need to map each
# build's 65536 ids. `--remove` takes the lines out again. Needs root.
#   scripts/builder-ids.sh [--remove] [USER] [START] [COUNT]
set -euo pipefail
remove=0
if [ "${1:-}" = --remove ]; then remove=1; shift; fi
user="${1:-$(id -un)}"
start="${2:-524288}"
count="${3:-1048576}"   # 16 builds at once × 65536 ids
line="$user:$start:$count"
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  if [ "$remove" = 1 ]; then
    grep -vxF "$line" "$f" > "$f.shelf-tmp" || true
    cat "$f.shelf-tmp" > "$f"; rm -f "$f.shelf-tmp"
  elif ! grep -qxF "$line" "$f"; then
    echo "$line" >> "$f"
  fi
done
