#!/usr/bin/env bash
# Installs the real third-party parts the integration tests (and the demo) run, when they are missing:
# the distribution registry, skopeo, podman, containerd + runc, dockerd, htpasswd, umoci, debootstrap (the container
# image test's local base), Prometheus + promtool (metrics test), Chromium (dashboard test).
set -euo pipefail
declare -A need=(
  [docker-registry]=docker-registry [skopeo]=skopeo [podman]=podman [containerd]=containerd [runc]=runc
  [dockerd]=docker.io [htpasswd]=apache2-utils [umoci]=umoci [openssl]=openssl [ip]=iproute2
  [debootstrap]=debootstrap [prometheus]=prometheus [promtool]=prometheus [chromium]=chromium
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-deps: missing ${missing[*]}; run as root or: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2046
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) ca-certificates >/dev/null
