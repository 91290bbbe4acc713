#!/usr/bin/env bash
# Makes the PostgreSQL the tests expect: running on 127.0.0.1:5432, trust auth for
# loopback connections, roles and databases `postgres`, `root` and `test`. Idempotent: on a machine
# where all of this holds it changes nothing. Needs root and Debian's `postgresql` package
# (scripts/system-deps.sh installs it); works without systemd (containers, CI runners).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  pg_isready -h 127.0.0.1 -p 5432 -q && exit 0
  echo "test-postgres: PostgreSQL is not answering on 127.0.0.1:5432 (run as root to set it up)" >&2
  exit 1
fi

# The newest installed server version, and its `main` cluster (created if the package made none).
version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
[ -n "$version" ] || { echo "test-postgres: no PostgreSQL server installed (apt-get install postgresql)" >&2; exit 1; }
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$version/main"; then
  pg_createcluster "$version" main --port 5432 >&2
fi
conf=/etc/postgresql/$version/main

port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
if [ "$port" != 5432 ]; then
  echo "test-postgres: cluster $version/main uses port $port; the tests expect 5432 (or set SHELF_TEST_PG)" >&2
  exit 1
fi

# Trust for loopback TCP and the local socket, ahead of any other rule. A running server only
# reloads its rules: it is never restarted (other test runs may be using it).
hba=$conf/pg_hba.conf
changed=0
for rule in 'host all all 127.0.0.1/32 trust' 'local all all trust'; do
  if ! grep -Eq "^${rule// /[[:space:]]+}[[:space:]]*$" "$hba"; then
    sed -i "1i $rule" "$hba"
    changed=1
  fi
done

status=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')
if [ "$status" != online ]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
elif [ "$changed" = 1 ]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "test-postgres: PostgreSQL did not start" >&2; exit 1; }

# Roles and databases: `postgres` (the tests' admin URL), `root` and `test` for psql and local runs.
psql_admin() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAq -v ON_ERROR_STOP=1 "$@"; }
for name in root test; do
  [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$name'")" = 1 ] || psql_admin -c "CREATE ROLE \"$name\" LOGIN SUPERUSER"
  [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" = 1 ] || psql_admin -c "CREATE DATABASE \"$name\" OWNER \"$name\""
done
echo "test-postgres: PostgreSQL $version on 127.0.0.1:5432, trust auth" >&2
