#!/usr/bin/env bash
# Build the project's images with no container registry and import them into the local
# cluster's containerd (k8s.io namespace):
#   localhost/debian-python:bookworm   base image: debootstrap (minbase + python3) + docker import
#   localhost/datapipelines:dev        operator + API   (deploy/docker/Dockerfile)
#   localhost/datapipelines-runner:dev the runner       (runner-image/Dockerfile)
# Python dependencies are installed OFFLINE inside the builds, from wheelhouses made here on the
# host with `pip wheel` (build/wheels/app, build/wheels/runner): TLS from inside containers fails
# on these machines. Starts dockerd (Debian's docker.io) if it is not running. Rebuilds use the
# layer cache; wheelhouses and the base image are rebuilt only when their inputs change.
#
# usage: hack/images.sh [--no-import] [app|runner|base ...]   (default: base app runner)
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
source "$HACK/versions.sh"

BASE_IMAGE="${DP_BASE_IMAGE:-localhost/debian-python:bookworm}"
APP_IMAGE="${DP_APP_IMAGE:-localhost/datapipelines:dev}"
RUNNER_IMAGE="${DP_RUNNER_IMAGE:-localhost/datapipelines-runner:dev}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STATE="$ROOT/.cluster"
CTRD_SOCK="$STATE/containerd/containerd.sock"
DOCKER=/usr/bin/docker # Debian's client, same version as its dockerd (20.10)
export DOCKER_HOST="${DP_DOCKER_HOST:-unix:///var/run/docker.sock}"
export DOCKER_BUILDKIT=0 # legacy builder: there is no buildx plugin here
PY="$ROOT/.venv/bin/python"
[[ -x $PY ]] || PY=python3

log() { printf '[images %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

do_import=1
targets=()
for a in "$@"; do
  case $a in
    --no-import) do_import=0 ;;
    base | app | runner) targets+=("$a") ;;
    *) die "unknown argument $a" ;;
  esac
done
((${#targets[@]})) || targets=(base app runner)

"$HACK/install-deps.sh"
mkdir -p "$DP_CACHE/images"
# one image build at a time on this machine (test sessions may call this concurrently)
exec 9>"$DP_CACHE/images.lock"
flock 9

# ------------------------------------------------------------------ dockerd
ensure_dockerd() {
  if $DOCKER info >/dev/null 2>&1; then return; fi
  [[ $DOCKER_HOST == unix:///var/run/docker.sock ]] || die "no docker daemon at $DOCKER_HOST"
  log "starting dockerd (log: $DP_CACHE/dockerd.log)"
  # No bridge, no iptables: builds and containers use --network host (traffic stays on loopback;
  # Docker's default bridge would use a private range).
  setsid /usr/sbin/dockerd --host=unix:///var/run/docker.sock \
    --data-root=/var/lib/docker --exec-root=/var/run/docker --pidfile=/var/run/docker.pid \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false --storage-driver=overlay2 --log-level=warn \
    >>"$DP_CACHE/dockerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$DP_CACHE/dockerd.pid"
  for _ in $(seq 1 120); do
    $DOCKER info >/dev/null 2>&1 && {
      log "dockerd up (pid $(cat "$DP_CACHE/dockerd.pid"))"
      return
    }
    kill -0 "$(cat "$DP_CACHE/dockerd.pid")" 2>/dev/null || {
      tail -20 "$DP_CACHE/dockerd.log" >&2
      die "dockerd exited"
    }
    sleep 0.5
  done
  die "dockerd did not answer in 60 s (log: $DP_CACHE/dockerd.log)"
}

# ------------------------------------------------------------------ base image
build_base() {
  local pkgs="python3,python3-venv,ca-certificates"
  local key
  key="$(echo "bookworm minbase $pkgs v1" | sha256sum | cut -c1-12)"
  local want_label="datapipelines.base=$key"
  if [[ "$($DOCKER image inspect -f '{{index .Config.Labels "datapipelines.base"}}' "$BASE_IMAGE" 2>/dev/null)" == "$key" ]]; then
    log "base image $BASE_IMAGE cached"
    return
  fi
  local tarball="$DP_CACHE/images/debian-python-bookworm-$key.tar.gz"
  if [[ ! -s $tarball ]]; then
    local t0=$SECONDS dir
    dir="$(mktemp -d "$DP_CACHE/images/rootfs.XXXXXX")"
    log "debootstrap bookworm (minbase + $pkgs) from $DEBIAN_MIRROR"
    debootstrap --variant=minbase --include="$pkgs" bookworm "$dir" "$DEBIAN_MIRROR" >"$DP_CACHE/images/debootstrap.log" 2>&1 ||
      {
        tail -20 "$DP_CACHE/images/debootstrap.log" >&2
        rm -rf "$dir"
        die "debootstrap failed"
      }
    # slim it like the usual images: no apt lists/caches, docs, man pages; `python` alias
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
      "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/*.log
    ln -sf python3 "$dir/usr/bin/python"
    tar --numeric-owner -C "$dir" -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
    log "base rootfs made in $((SECONDS - t0)) s ($(du -h "$tarball" | cut -f1))"
  fi
  $DOCKER import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $want_label" \
    --change 'CMD ["python3"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE into docker"
}

# ------------------------------------------------------------------ wheelhouses
# wheelhouse NAME EXTRAS [PINNED_REQUIREMENTS_FILE]: build/wheels/NAME with every third-party
# wheel the image installs: from the pinned file when the image has one (the runner's
# runner-image/requirements.txt), else pyproject's dependencies + those extras.
wheelhouse() {
  local name=$1 extras=$2 pinned=${3:-} dir="$ROOT/build/wheels/$1" req key
  if [[ -n $pinned && -f $ROOT/$pinned ]]; then
    req="$(grep -vE '^\s*(#|$)' "$ROOT/$pinned")"
  else
    req="$("$PY" "$HACK/requirements.py" "$extras")"
  fi
  key="$( (echo "$req"; "$PY" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-16)"
  if [[ -f $dir/.stamp && "$(cat "$dir/.stamp")" == "$key" ]]; then
    log "wheelhouse build/wheels/$name up to date"
    return
  fi
  local t0=$SECONDS
  log "pip wheel → build/wheels/$name ($extras)"
  rm -rf "$dir" && mkdir -p "$dir"
  echo "$req" >"$dir/requirements.txt"
  # only this wheelhouse and PyPI: ignore any machine-wide PIP_FIND_LINKS
  PIP_FIND_LINKS='' "$PY" -m pip wheel -q --wheel-dir "$dir" -r "$dir/requirements.txt"
  echo "$key" >"$dir/.stamp"
  log "wheelhouse $name: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1), $((SECONDS - t0)) s"
}

# build_image TAG DOCKERFILE WHEELS_DIR
build_image() {
  local tag=$1 dockerfile=$2 wheels=$3 t0=$SECONDS
  log "docker build $tag ($dockerfile)"
  $DOCKER build --network host -f "$ROOT/$dockerfile" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "WHEELS_DIR=$wheels" \
    -t "$tag" "$ROOT" >"$DP_CACHE/images/build-${tag//[\/:]/_}.log" 2>&1 ||
    {
      tail -40 "$DP_CACHE/images/build-${tag//[\/:]/_}.log" >&2
      die "docker build of $tag failed (log: $DP_CACHE/images/build-${tag//[\/:]/_}.log)"
    }
  log "built $tag in $((SECONDS - t0)) s ($($DOCKER image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# ------------------------------------------------------------------ import into the cluster
ctr_() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }
import_image() {
  local tag=$1 id stamp
  id="$($DOCKER image inspect -f '{{.Id}}' "$tag")"
  stamp="$STATE/images/${tag//[\/:]/_}.id"
  if [[ -f $stamp && "$(cat "$stamp")" == "$id" ]] && ctr_ images ls -q 2>/dev/null | grep -qxF "$tag"; then
    log "$tag already in the cluster's containerd"
    return
  fi
  local t0=$SECONDS
  $DOCKER save "$tag" | ctr_ images import - >/dev/null
  mkdir -p "$STATE/images" && echo "$id" >"$stamp"
  log "imported $tag into the cluster's containerd in $((SECONDS - t0)) s"
}

T0=$SECONDS
ensure_dockerd
built=()
build_base # every image builds on it
built+=("$BASE_IMAGE")
for t in "${targets[@]}"; do
  case $t in
    app)
      wheelhouse app operator,api deploy/docker/requirements.txt
      build_image "$APP_IMAGE" deploy/docker/Dockerfile build/wheels/app
      built+=("$APP_IMAGE")
      ;;
    runner)
      if [[ ! -f $ROOT/runner-image/Dockerfile ]]; then
        log "WARNING: runner-image/Dockerfile does not exist yet: $RUNNER_IMAGE not built"
        continue
      fi
      wheelhouse runner runner runner-image/requirements.txt
      build_image "$RUNNER_IMAGE" runner-image/Dockerfile build/wheels/runner
      built+=("$RUNNER_IMAGE")
      ;;
  esac
done
if ((do_import)); then
  if [[ -S $CTRD_SOCK ]] && ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; then
    for img in "${built[@]}"; do import_image "$img"; done
  else
    log "cluster not running ($CTRD_SOCK): images built but not imported; run 'make cluster-up' then 'make images'"
  fi
fi
log "done in $((SECONDS - T0)) s"
