#!/bin/bash
# Starts the four Swift servers set up by setup.sh; PIDs in $SW/run/*.pid; waits for the proxy.
set -euo pipefail
SW=${SW:?set SW to a state directory}
S3_PORT=${S3_PORT:-8080}; ACCOUNT_PORT=${ACCOUNT_PORT:-6202}; CONTAINER_PORT=${CONTAINER_PORT:-6201}; OBJECT_PORT=${OBJECT_PORT:-6200}
for s in account container object proxy; do
  setsid /usr/bin/swift-$s-server "$SW/etc/$s-server.conf" -v > "$SW/log/$s.log" 2>&1 < /dev/null &
  echo $! > "$SW/run/$s.pid"
done
# The proxy answers before the servers behind it listen, and then gives 503 (S3: SlowDown).
for port in "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT"; do
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
done
for _ in $(seq 1 300); do
  # Plain bash, no curl: GET /healthcheck answers 200 once the proxy is up.
  if (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT" && printf 'GET /healthcheck HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200 ') 2>/dev/null; then exit 0; fi
  sleep 0.1
done
echo "swift proxy did not come up on port $S3_PORT" >&2; tail -20 "$SW"/log/*.log >&2; exit 1
