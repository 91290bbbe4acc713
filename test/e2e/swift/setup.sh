#!/bin/bash
# Single-node OpenStack Swift + s3api on 127.0.0.1 (see ../shared/spec/s3-local.md), all state under $SW.
# Ports: S3_PORT (proxy, S3 API), ACCOUNT_PORT, CONTAINER_PORT, OBJECT_PORT (internal servers).
# S3 credentials: access key "test:tester", secret "testing", region us-east-1, path-style.
set -euo pipefail
SW=${SW:?set SW to a state directory}
S3_PORT=${S3_PORT:-8080}; ACCOUNT_PORT=${ACCOUNT_PORT:-6202}; CONTAINER_PORT=${CONTAINER_PORT:-6201}; OBJECT_PORT=${OBJECT_PORT:-6200}
ETC=$SW/etc; DEV=$SW/srv/node; RUN=$SW/run; LOG=$SW/log
rm -rf "$ETC" "$SW/srv" "$RUN" "$LOG"
mkdir -p "$ETC" "$DEV/d1" "$RUN" "$LOG"

common() { # $1 = port
cat <<EOC
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
user = $(id -un)
swift_dir = $ETC
devices = $DEV
mount_check = false
log_level = WARNING
EOC
}

{ common "$ACCOUNT_PORT"; printf '[pipeline:main]\npipeline = account-server\n[app:account-server]\nuse = egg:swift#account\n'; } > "$ETC/account-server.conf"
{ common "$CONTAINER_PORT"; printf '[pipeline:main]\npipeline = container-server\n[app:container-server]\nuse = egg:swift#container\n'; } > "$ETC/container-server.conf"
{ common "$OBJECT_PORT"; printf '[pipeline:main]\npipeline = object-server\n[app:object-server]\nuse = egg:swift#object\n'; } > "$ETC/object-server.conf"

# No memcached: the cache middleware works without one (it only logs connection errors), and
# memcache_servers points at a closed port so nothing shared is touched.
cat > "$ETC/proxy-server.conf" <<EOC
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $S3_PORT
workers = 0
user = $(id -un)
swift_dir = $ETC
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = ${MEMCACHED:-127.0.0.1:1}
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
max_upload_part_num = 10000
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
[filter:dlo]
use = egg:swift#dlo
EOC

cd "$ETC"
for r in account:$ACCOUNT_PORT container:$CONTAINER_PORT object:$OBJECT_PORT; do
  n=${r%%:*}; p=${r##*:}
  swift-ring-builder $n.builder create 8 1 1 >/dev/null
  swift-ring-builder $n.builder add r1z1-127.0.0.1:$p/d1 1 >/dev/null
  swift-ring-builder $n.builder rebalance >/dev/null
done
