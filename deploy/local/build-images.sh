#!/usr/bin/env bash
# `make stack-images`: every image of docker-compose.yaml built on this machine, for hosts that
# cannot pull from an image registry (docker-compose.local.yaml runs them). Builds only what is
# missing; the Dockerfile's targets rebuild from podman's layer cache.
#
#   localhost/mlops-local/debian:bookworm     debootstrap of the apt mirror this host uses
#   localhost/mlops-local/python:3.11         stands in for python:3.11-slim (PYTHON_IMAGE)
#   localhost/mlops-local/airflow:3.3.2       stands in for apache/airflow (AIRFLOW_IMAGE)
#   localhost/mlops-local/{postgres,redis,prometheus,alertmanager,node-exporter,socket-proxy}
#                                             third-party stand-ins from Debian packages
#   localhost/mlops-pipeline/{airflow,mlflow,model-server}:latest   the Dockerfile's targets
#
# The host's CA bundle (HTTPS to the package registries goes through it here) is copied to
# deploy/build-certs/ca.crt, git-ignored, and reaches builds only as a bind mount of the
# steps that download: it is in no layer. Environment: DEBIAN_MIRROR (else the host's
# bookworm mirror), HOST_CA_BUNDLE, FORCE_BASE=1 (rebootstrap the base images).
set -euo pipefail
cd "$(dirname "$0")/../.."

LOCAL=localhost/mlops-local
AIRFLOW_VERSION=3.3.2
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
started=$(date +%s)
stage_started=$started
log=$(mktemp)
trap 'rm -f "$log"' EXIT

stage() {
    local now
    now=$(date +%s)
    printf '[stack-images] %-34s %4ss\n' "$1" "$((now - stage_started))"
    stage_started=$now
}

missing() { [ "${FORCE_BASE:-0}" = 1 ] || ! podman image exists "$1"; }

# podman 4.3.1 on Debian 12: crun fails on this cgroup layout and the default rlimits are
# refused, so every podman command gets runc and explicit limits (shared/CONTAINERS.md).
install_podman() {
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
        || ! command -v debootstrap >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq podman runc debootstrap >/dev/null
    fi
    if [ ! -f /etc/containers/containers.conf ]; then
        mkdir -p /etc/containers
        cp deploy/local/containers.conf /etc/containers/containers.conf
    fi
}

# The first bookworm mirror of the host's apt sources (deb822 or one-line format).
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    python3 - <<'PY'
import glob, re
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in open(path).read().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", block, flags=re.M))
        if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
            print(fields["URIs"].split()[0]); raise SystemExit
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
        if m:
            print(m[1]); raise SystemExit
raise SystemExit("no bookworm mirror in /etc/apt; set DEBIAN_MIRROR")
PY
}

bootstrap_debian() {
    local image=$LOCAL/debian:bookworm rootfs mirror
    missing "$image" || return 0
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d /var/tmp/mlops-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' RETURN
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$mirror" >/dev/null
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    # Containers have no init: services are never started by package installs.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
}

copy_ca_bundle() {
    if [ -f "$HOST_CA_BUNDLE" ]; then
        cp "$HOST_CA_BUNDLE" deploy/build-certs/ca.crt
    fi
}

build() {
    # build FILE TARGET IMAGE [ARGS...]
    local file=$1 target=$2 image=$3
    shift 3
    # The steps' own output only when one fails: a cached build prints its stage times alone.
    if ! podman build --quiet --pull=never --layers -f "$file" --target "$target" -t "$image" \
        "$@" . >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "[stack-images] building $image failed (log above)" >&2
        return 1
    fi
}

install_podman
stage "podman installed"
bootstrap_debian
stage "debian base (debootstrap)"
copy_ca_bundle
bases=(--build-arg "DEBIAN_IMAGE=$LOCAL/debian:bookworm")
if missing "$LOCAL/python:3.11"; then
    build deploy/local/Dockerfile python "$LOCAL/python:3.11" "${bases[@]}"
fi
stage "python base"
if missing "$LOCAL/airflow:$AIRFLOW_VERSION"; then
    build deploy/local/Dockerfile airflow "$LOCAL/airflow:$AIRFLOW_VERSION" "${bases[@]}" \
        --build-arg "AIRFLOW_VERSION=$AIRFLOW_VERSION"
fi
stage "airflow base"
for service in postgres redis prometheus alertmanager node-exporter; do
    if missing "$LOCAL/$service:latest"; then
        build deploy/local/Dockerfile "$service" "$LOCAL/$service:latest" "${bases[@]}"
    fi
    stage "$service"
done
platform=(--build-arg "AIRFLOW_IMAGE=$LOCAL/airflow:$AIRFLOW_VERSION"
    --build-arg "PYTHON_IMAGE=$LOCAL/python:3.11")
for target in airflow mlflow model-server; do
    build Dockerfile "$target" "localhost/mlops-pipeline/$target:latest" "${platform[@]}"
    stage "$target (Dockerfile)"
done
printf '[stack-images] %-34s %4ss\n' "total" "$(($(date +%s) - started))"
