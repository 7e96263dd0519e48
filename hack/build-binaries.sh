#!/usr/bin/env bash
# Build (once) and cache the cluster binaries from the Go module proxy:
#   etcd 3.5.x, kube-apiserver/-controller-manager/-scheduler, kubelet, kubectl (v1.33.x), helm v3,
#   kwok (fake nodes for the scale harness; built only when asked for or with no argument).
# Cached under ~/.cache/datapipelines/bin/<component>-<version>/ ; a second run skips what exists.
# Usage: hack/build-binaries.sh [etcd|kubernetes|helm|kwok]...   (default: all)
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$HACK/versions.sh"

export GOFLAGS="${GOFLAGS:--p=2} -buildvcs=false"
export GOTOOLCHAIN=local
SRC="$DP_CACHE/src"
mkdir -p "$SRC" "$DP_BIN"
log() { printf '[build-binaries %s] %s\n' "$(date +%T)" "$*" >&2; }
[[ -x /usr/local/go/bin/go ]] && PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { log "go not found in PATH (or /usr/local/go/bin)"; exit 1; }

have_all() { local d=$1; shift; for b in "$@"; do [[ -x "$d/$b" ]] || return 1; done; }

build_etcd() {
  if have_all "$ETCD_BIN" etcd; then log "etcd $ETCD_VERSION cached"; return; fi
  local t0=$SECONDS mod="$SRC/etcd-$ETCD_VERSION"
  log "building etcd $ETCD_VERSION"
  rm -rf "$mod" && mkdir -p "$mod"
  # server/go.mod has `replace … => ../api`, so `go install` of it fails; a wrapper module works.
  cat >"$mod/go.mod" <<EOM
module local/etcdbuild

go 1.23

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOM
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
      && CGO_ENABLED=0 go build -trimpath -o "$mod/out/etcd" \
         -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
         go.etcd.io/etcd/server/v3)
  mkdir -p "$ETCD_BIN" && mv "$mod/out/etcd" "$ETCD_BIN/etcd"
  log "etcd built in $((SECONDS - t0)) s"
}

build_kubernetes() {
  local static=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if have_all "$KUBE_BIN" "${static[@]}" kubelet; then log "kubernetes $KUBE_VERSION cached"; return; fi
  local t0=$SECONDS mod="$SRC/kubernetes-$KUBE_VERSION"
  local stagever="v0.${KUBE_VERSION#v1.}"
  log "building kubernetes $KUBE_VERSION (staging modules at $stagever)"
  mkdir -p "$mod/out"
  if [[ ! -f "$mod/.ready" ]]; then
    rm -f "$mod/go.mod" "$mod/go.sum"
    # The staging modules are required at v0.0.0 by k8s.io/kubernetes; replace each by its tag.
    local gomod
    gomod="$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [[ -f "$gomod" ]] || { log "cannot download k8s.io/kubernetes $KUBE_VERSION go.mod"; exit 1; }
    {
      printf 'module local/kubebuild\n\ngo 1.24\n\nrequire k8s.io/kubernetes %s\n\n' "$KUBE_VERSION"
      grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/' "$gomod" \
        | awk -v v="$stagever" '{print "replace " $1 " => " $1 " " v}'
    } >"$mod/go.mod"
    log "$(grep -c '^replace' "$mod/go.mod") staging modules replaced"
    local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
    (cd "$mod" && go get "k8s.io/kubernetes@$KUBE_VERSION" \
       && GOFLAGS="$GOFLAGS -mod=mod" go list "${cmds[@]/#/k8s.io/kubernetes/cmd/}" >/dev/null)
    touch "$mod/.ready"
  fi
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  local missing=()
  for b in "${static[@]}"; do [[ -x "$KUBE_BIN/$b" ]] || missing+=("k8s.io/kubernetes/cmd/$b"); done
  if ((${#missing[@]})); then
    log "go build (CGO_ENABLED=0): ${missing[*]}"
    (cd "$mod" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags selinux,notest -ldflags "$ld" -o "$mod/out/" "${missing[@]}")
    mkdir -p "$KUBE_BIN"
    for p in "${missing[@]}"; do mv "$mod/out/${p##*/}" "$KUBE_BIN/"; done
    log "control plane + kubectl built ($((SECONDS - t0)) s so far)"
  fi
  if [[ ! -x "$KUBE_BIN/kubelet" ]]; then
    log "go build (cgo): kubelet"
    (cd "$mod" && CGO_ENABLED=1 go build -mod=mod -trimpath -tags selinux,notest -ldflags "$ld" -o "$mod/out/kubelet" k8s.io/kubernetes/cmd/kubelet)
    mkdir -p "$KUBE_BIN" && mv "$mod/out/kubelet" "$KUBE_BIN/kubelet"
  fi
  log "kubernetes built in $((SECONDS - t0)) s"
}

build_helm() {
  if have_all "$HELM_BIN" helm; then log "helm $HELM_VERSION cached"; return; fi
  local t0=$SECONDS
  log "building helm $HELM_VERSION"
  mkdir -p "$HELM_BIN"
  GOBIN="$HELM_BIN" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  log "helm built in $((SECONDS - t0)) s"
}

build_kwok() {
  if have_all "$KWOK_BIN" kwok; then log "kwok $KWOK_VERSION cached"; return; fi
  local t0=$SECONDS
  log "building kwok $KWOK_VERSION"
  mkdir -p "$KWOK_BIN"
  # plain `go install` (no replace lines); kwok's own release script sets the version the same way
  GOBIN="$KWOK_BIN" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "kwok built in $((SECONDS - t0)) s"
}

what=("$@"); ((${#what[@]})) || what=(etcd kubernetes helm kwok)
T0=$SECONDS
for w in "${what[@]}"; do
  case "$w" in etcd | kubernetes | helm | kwok) ;; *) log "unknown component $w"; exit 2 ;; esac
  # one build per component at a time (test sessions may ask concurrently); the second waits
  (
    exec 9>"$DP_CACHE/build-$w.lock"
    flock 9
    "build_$w"
  )
done
log "all done in $((SECONDS - T0)) s; cache: $(du -sh "$DP_BIN" | cut -f1) in $DP_BIN"
