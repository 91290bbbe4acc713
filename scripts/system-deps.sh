#!/usr/bin/env bash
# Installs the Debian packages the build and the test suite need (a C compiler for the Go test clients (cgo),
# PostgreSQL, real clients, siftool, reference registry, nginx for the download offload, systemd-analyze for the unit file).
# Idempotent: does nothing when every package is already installed. Needs root for apt-get.
set -euo pipefail

PACKAGES=(
  build-essential
  python3
  postgresql
  golang-go
  golang-github-apptainer-container-library-client-dev
  golang-github-apptainer-container-key-client-dev
  golang-oras-oras-go-dev
  golang-github-sylabs-sif-dev
  golang-github-sylabs-json-resp-dev
  golang-github-containerd-containerd-dev
  golang-github-opencontainers-go-digest-dev
  golang-github-opencontainers-image-spec-dev
  golang-github-sirupsen-logrus-dev
  golang-golang-x-crypto-dev
  siftool
  skopeo
  docker-registry
  squashfs-tools
  uidmap
  busybox-static
  slirp4netns
  slapd
  ldap-utils
  chromium
  swift-proxy
  swift-account
  swift-container
  swift-object
  postgresql-client
  openssl
  nginx
  systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi

apt_retry() {
  # Another apt may hold the dpkg lock on a shared machine: wait instead of failing.
  local i
  for i in $(seq 1 60); do
    if DEBIAN_FRONTEND=noninteractive "$@" >/tmp/shelf-apt.log 2>&1; then return 0; fi
    if grep -qiE 'could not get lock|unable to lock|is another process using it' /tmp/shelf-apt.log; then
      sleep 5; continue
    fi
    cat /tmp/shelf-apt.log >&2; return 1
  done
  cat /tmp/shelf-apt.log >&2; return 1
}

echo "system-deps: installing ${missing[*]}" >&2
apt_retry apt-get update
apt_retry apt-get install -y --no-install-recommends "${missing[@]}"
