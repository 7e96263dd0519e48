# shellcheck shell=bash disable=SC2034
# Pinned versions of the locally built cluster binaries (sourced by hack/*.sh).
# Kubernetes 1.33 is the newest minor that containerd 1.6 (Debian bookworm) supports.
KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# kwok (fake nodes for the scale harness, hack/kwok.sh); v0.8.0 needs go >= 1.26
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
DP_CACHE="${DATAPIPELINES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datapipelines}"
DP_BIN="$DP_CACHE/bin"
KUBE_BIN="$DP_BIN/kubernetes-$KUBE_VERSION"
ETCD_BIN="$DP_BIN/etcd-$ETCD_VERSION"
HELM_BIN="$DP_BIN/helm-$HELM_VERSION"
KWOK_BIN="$DP_BIN/kwok-$KWOK_VERSION"
