#!/bin/bash
# Stops the Swift servers started by start.sh (by their recorded PIDs only).
SW=${SW:?set SW to a state directory}
for f in "$SW"/run/*.pid; do
  [ -f "$f" ] || continue
  kill "$(cat "$f")" 2>/dev/null || true
  rm -f "$f"
done
