#!/usr/bin/env bash
# Install the Debian packages the local cluster and the image builds need. Idempotent and quick
# when everything is already there. Services are NOT started by the packages (policy-rc.d):
# hack/cluster.sh and hack/images.sh start their own containerd/dockerd bound to local sockets.
set -euo pipefail
log() { printf '[install-deps %s] %s\n' "$(date +%T)" "$*" >&2; }

PKGS=(
  containerd runc containernetworking-plugins   # the node's runtime + loopback CNI
  docker.io                                     # dockerd for `make images` (legacy builder)
  debootstrap                                   # the locally made base image
  openssl                                       # cluster CA and certificates
  iptables conntrack socat ethtool              # tools the kubelet looks up on the host
  util-linux mount procps psmisc                # mount/umount/nsenter, pkill-free process tools
  gcc libc6-dev                                 # the kubelet is built with cgo; static pause binary
  postgresql                                    # destination/history tests
  chromium fonts-dejavu-core                    # the console's browser tests (Playwright drives it)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  log "all ${#PKGS[@]} packages present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then log "need root to install: ${missing[*]}"; exit 1; fi
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package maintainer scripts from starting dockerd/containerd/postgresql services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
# Refresh the lists when they are missing or older than a day.
if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]]; then
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed ${#missing[@]} packages"
