#!/usr/bin/env bash
# kwok (sigs.k8s.io/kwok) as a local process against the local cluster (hack/cluster.sh):
# fake nodes on which pods "run" through the stages of hack/kwok/ and finish with the runner's
# JSON result in their termination message — no container runs. For the scale harness.
#
#   hack/kwok.sh up [N]   starts the cluster if needed, builds/caches kwok, starts it and makes
#                         fake nodes kwok-node-0..N-1; returns when all are Ready. N given (or
#                         $KWOK_NODES): exactly N, extra fake nodes are deleted; not given: at
#                         least 4, more that exist are kept (a plain `up` of a test never
#                         shrinks what a benchmark made). Idempotent: at once when all is in place.
#   hack/kwok.sh down     stops exactly the recorded kwok process and deletes the fake nodes,
#                         their Leases and kwok's RBAC (hack/cluster.sh down also stops kwok)
#   hack/kwok.sh status   the process, the fake nodes and the pods on them
#
# Only pods that tolerate the taint kwok.x-k8s.io/node=fake:NoSchedule (and select type=kwok)
# land on the fake nodes; kwok manages only nodes labelled type=kwok and the pods bound to them,
# so the real node and every other pod are untouched. kwok listens on no port; its client talks
# to https://127.0.0.1:$DP_API_PORT only, as user datapipelines-kwok (a client cert of the
# cluster CA, rights in hack/kwok/rbac.yaml). Fake nodes and pods get 127.x addresses.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
# shellcheck source=versions.sh
source "$HACK/versions.sh"
# shellcheck source=layout.sh
source "$HACK/layout.sh"

KWOK_STATE="$STATE/kwok"
KWOK_KUBECONFIG="$KWOK_STATE/kubeconfig"
CONF_DIR="$HACK/kwok"
CONFIGS=("$CONF_DIR/kwok.yaml" "$CONF_DIR/stages-node.yaml" "$CONF_DIR/stages-pod.yaml")
KWOK_USER=datapipelines-kwok
NODE_PREFIX=kwok-node-
NODE_LABEL=type=kwok
NODE_TAINT_KEY=kwok.x-k8s.io/node
NODES="${KWOK_NODES:-}" # exact count when set (or `up N`)
DEFAULT_NODES=4
EXACT=""
# per fake node; the scheduler spreads pods over the nodes
NODE_PODS="${KWOK_NODE_PODS:-1000}"
NODE_CPU="${KWOK_NODE_CPU:-1000}"
NODE_MEMORY="${KWOK_NODE_MEMORY:-4Ti}"
# runner pods request ephemeral-storage by default (runner.resources): a node must offer it
NODE_EPHEMERAL="${KWOK_NODE_EPHEMERAL:-1000Ti}"
# loopback only: the real kubelet listens on 127.0.0.1, so an apiserver→"kubelet" call for a
# fake node (kubectl logs/exec) is refused at once instead of reaching the real kubelet
NODE_IP="${KWOK_NODE_IP:-127.0.0.2}"
POD_CIDR="${KWOK_POD_CIDR:-127.64.0.0/16}" # pods without hostNetwork
LEASE_SECONDS="${KWOK_LEASE_SECONDS:-40}"
LOG_LEVEL="${KWOK_LOG_LEVEL:-INFO}" # INFO: one JSON line per node/pod action; WARN for less

log() { printf '[kwok %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

pid_of() { [[ -s "$PIDS/kwok.pid" ]] && cat "$PIDS/kwok.pid"; }
# the recorded pid is still our kwok (same binary in its command line), not a recycled pid
alive() {
  local pid
  pid="$(pid_of)" || return 1
  [[ -d /proc/$pid && -s $PIDS/kwok.exe ]] && grep -qF -- "$(cat "$PIDS/kwok.exe")" "/proc/$pid/cmdline" 2>/dev/null
}
api_ready() { [[ -f $KUBECONFIG_ADMIN ]] && kubectl get --raw /readyz >/dev/null 2>&1; }
node_names() { # kwok-node-0 .. kwok-node-(N-1)
  local i
  for ((i = 0; i < NODES; i++)); do echo "$NODE_PREFIX$i"; done
}

# ---------------------------------------------------------------- identity
# A client certificate of the cluster CA for user datapipelines-kwok (no group: RBAC only).
write_identity() {
  mkdir -p "$KWOK_STATE"
  if [[ -f $KWOK_STATE/kwok.crt ]] && openssl verify -CAfile "$PKI/ca.crt" "$KWOK_STATE/kwok.crt" >/dev/null 2>&1; then
    return
  fi
  log "client certificate CN=$KWOK_USER"
  (
    cd "$KWOK_STATE"
    umask 077
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >kwok.ext
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout kwok.key \
      -out kwok.csr -subj "/CN=$KWOK_USER" 2>/dev/null
    openssl x509 -req -in kwok.csr -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
      -CAserial "$KWOK_STATE/ca.srl" -days 3650 -extfile kwok.ext -out kwok.crt 2>/dev/null
    rm -f kwok.csr kwok.ext
  )
  write_kubeconfig "$KWOK_KUBECONFIG" "$KWOK_USER" "$KWOK_STATE/kwok.crt" "$KWOK_STATE/kwok.key"
}

# ---------------------------------------------------------------- process
KWOK_ARGS=()
set_args() {
  KWOK_ARGS=(
    --kubeconfig="$KWOK_KUBECONFIG"
    --manage-nodes-with-label-selector="$NODE_LABEL"
    --node-ip="$NODE_IP" --cidr="$POD_CIDR"
    --node-lease-duration-seconds="$LEASE_SECONDS"
    -v="$LOG_LEVEL"
  )
  local c
  for c in "${CONFIGS[@]}"; do KWOK_ARGS+=(--config="$c"); done
}

# what the running kwok was started with: binary, flags and the content of its config files
fingerprint() { { echo "$KWOK_BIN/kwok" "${KWOK_ARGS[@]}"; cat "${CONFIGS[@]}"; } | sha256sum | cut -c1-16; }

stop_kwok() {
  local pid
  if ! alive; then
    rm -f "$PIDS/kwok.pid"
    return
  fi
  pid="$(pid_of)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    [[ -d /proc/$pid ]] || break
    sleep 0.2
  done
  if [[ -d /proc/$pid ]]; then
    log "kwok (pid $pid) ignored SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/kwok.pid"
  log "stopped kwok (pid $pid)"
}

# Leases of the fake nodes held by a kwok that is gone: a new kwok (new identity) would wait the
# whole lease duration before managing those nodes. Deleting them lets it take over at once.
delete_leases() {
  local names
  mapfile -t names < <(kubectl get nodes -l "$NODE_LABEL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  ((${#names[@]})) || return 0
  kubectl -n kube-node-lease delete lease "${names[@]}" --ignore-not-found --wait=false >/dev/null
}

start_kwok() {
  mkdir -p "$LOGS" "$PIDS" "$KWOK_STATE/work"
  delete_leases
  printf '%s' "$KWOK_BIN/kwok" >"$PIDS/kwok.exe"
  # own session; KWOK_WORKDIR keeps kwok away from ~/.kwok (it would load ~/.kwok/kwok.yaml);
  # fd 9 (our lock) closed so the daemon does not hold it
  KWOK_WORKDIR="$KWOK_STATE/work" setsid "$KWOK_BIN/kwok" "${KWOK_ARGS[@]}" \
    >>"$LOGS/kwok.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/kwok.pid"
  fingerprint >"$KWOK_STATE/fingerprint"
  log "started kwok $KWOK_VERSION (pid $!), log $LOGS/kwok.log"
}

# ---------------------------------------------------------------- fake nodes
node_manifest() { # NAME
  cat <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$1",
   "labels": {"type": "kwok", "kubernetes.io/hostname": "$1", "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "node-role.kubernetes.io/kwok": ""},
   "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
 "spec": {"taints": [{"key": "$NODE_TAINT_KEY", "value": "fake", "effect": "NoSchedule"}]},
 "status": {"allocatable": {"cpu": "$NODE_CPU", "memory": "$NODE_MEMORY", "pods": "$NODE_PODS",
                            "ephemeral-storage": "$NODE_EPHEMERAL"},
            "capacity": {"cpu": "$NODE_CPU", "memory": "$NODE_MEMORY", "pods": "$NODE_PODS",
                         "ephemeral-storage": "$NODE_EPHEMERAL"}}}
EOF
}

ensure_nodes() {
  local want have n extra=()
  mapfile -t want < <(node_names)
  mapfile -t have < <(kubectl get nodes -l "$NODE_LABEL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  # nodes made before they offered ephemeral-storage are made again (status is set on create)
  local stale=()
  mapfile -t stale < <(kubectl get nodes -l "$NODE_LABEL" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.allocatable.ephemeral-storage}{"\n"}{end}' | awk 'NF == 1 {print $1}')
  if ((${#stale[@]})); then
    log "re-creating ${#stale[@]} fake node(s) without ephemeral-storage"
    kubectl delete node "${stale[@]}" --ignore-not-found --wait=true >/dev/null
    mapfile -t have < <(kubectl get nodes -l "$NODE_LABEL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  fi
  for n in "${have[@]}"; do
    [[ " ${want[*]} " == *" $n "* ]] || extra+=("$n")
  done
  if ((${#extra[@]})); then
    log "deleting ${#extra[@]} fake node(s) beyond $NODES: ${extra[*]}"
    kubectl delete node "${extra[@]}" --ignore-not-found --wait=false >/dev/null
  fi
  local missing=()
  for n in "${want[@]}"; do
    [[ " ${have[*]} " == *" $n "* ]] || missing+=("$n")
  done
  ((${#missing[@]})) || return 0
  log "creating ${#missing[@]} fake node(s): ${missing[0]}…${missing[-1]} ($NODE_PODS pods, $NODE_CPU cpu, $NODE_MEMORY each)"
  # status (allocatable/capacity) is taken on create, as when a kubelet registers
  for n in "${missing[@]}"; do node_manifest "$n"; done | kubectl create -f - >/dev/null
}

# every fake node Ready and its Lease held (start_kwok deleted stale ones: a Lease now is the
# running kwok's, so a node left Ready by a killed kwok does not count)
nodes_ready() {
  local ready leases
  ready="$(kubectl get nodes -l "$NODE_LABEL" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')" || true
  ((ready == NODES)) || return 1
  leases="$(kubectl -n kube-node-lease get leases -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -c "^$NODE_PREFIX")" || true
  ((leases == NODES))
}

wait_nodes_ready() {
  local deadline=$((SECONDS + ${1:-90}))
  until nodes_ready; do
    if ! alive; then
      tail -n 40 "$LOGS/kwok.log" >&2 || true
      die "kwok exited while waiting for its nodes (log: $LOGS/kwok.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$LOGS/kwok.log" >&2 || true
      kubectl get nodes -l "$NODE_LABEL" >&2 || true
      die "timed out waiting for $NODES fake nodes to be Ready"
    fi
    sleep 0.5
  done
}

# NODES unless given: the default, or more when more fake nodes exist (highest index + 1)
resolve_nodes() {
  [[ -n $EXACT ]] && return
  local top
  top="$(kubectl get nodes -l "$NODE_LABEL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' |
    sed -n "s/^$NODE_PREFIX\([0-9][0-9]*\)\$/\1/p" | sort -n | tail -n 1)"
  NODES=$DEFAULT_NODES
  if [[ -n $top ]] && ((top + 1 > NODES)); then NODES=$((top + 1)); fi
}

# ---------------------------------------------------------------- commands
cmd_up() {
  local t0=$SECONDS
  EXACT=$NODES
  if [[ -n $EXACT ]] && ! [[ $EXACT =~ ^[1-9][0-9]*$ ]]; then die "node count must be a positive number, got '$EXACT'"; fi
  set_args
  if alive && [[ -f $KWOK_STATE/fingerprint && "$(cat "$KWOK_STATE/fingerprint")" == "$(fingerprint)" ]] &&
    api_ready && resolve_nodes && nodes_ready && [[ "$(kubectl get nodes -l "$NODE_LABEL" -o name | wc -l)" -eq $NODES ]]; then
    log "kwok already up (pid $(pid_of)) with $NODES Ready fake nodes"
    return
  fi
  "$HACK/cluster.sh" up >&2
  "$HACK/build-binaries.sh" kwok
  [[ -x $KWOK_BIN/kwok ]] || die "$KWOK_BIN/kwok missing after hack/build-binaries.sh kwok"
  write_identity
  kubectl apply --server-side --force-conflicts -f "$CONF_DIR/rbac.yaml" >/dev/null
  if alive && [[ "$(cat "$KWOK_STATE/fingerprint" 2>/dev/null)" != "$(fingerprint)" ]]; then
    log "kwok's flags or hack/kwok/*.yaml changed: restarting it"
    stop_kwok
  fi
  alive || start_kwok
  resolve_nodes
  ensure_nodes
  wait_nodes_ready 90
  log "kwok up: $NODES fake nodes Ready after $((SECONDS - t0)) s (label $NODE_LABEL, taint $NODE_TAINT_KEY=fake:NoSchedule)"
  echo "ready_seconds=$((SECONDS - t0))"
}

cmd_down() {
  stop_kwok
  rm -f "$PIDS/kwok.exe"
  if api_ready; then
    # pods still bound to them are failed and removed by the pod GC (orphaned pods)
    delete_leases
    kubectl delete nodes -l "$NODE_LABEL" --ignore-not-found --wait=false >/dev/null
    kubectl delete -f "$CONF_DIR/rbac.yaml" --ignore-not-found --wait=false >/dev/null
    log "fake nodes ($NODE_LABEL), their leases and kwok's RBAC deleted"
  else
    log "apiserver not reachable: no fake nodes to delete"
  fi
  rm -rf "$KWOK_STATE"
  log "kwok down"
}

cmd_status() {
  local rc=0
  if alive; then echo "  kwok $KWOK_VERSION            running (pid $(pid_of)), log $LOGS/kwok.log"; else
    echo "  kwok                     NOT running"
    rc=1
  fi
  if api_ready; then
    kubectl get nodes -l "$NODE_LABEL" 2>&1 | sed 's/^/  /'
    local n
    n="$(kubectl get pods -A -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -c "^$NODE_PREFIX")" || true
    echo "  pods on fake nodes: $n"
  else
    echo "  apiserver $API_URL NOT ready"
    rc=1
  fi
  return $rc
}

# up/down of one checkout's kwok run one at a time; fd 9 is closed for kwok itself
lock() {
  mkdir -p "$DP_CACHE"
  exec 9>"$DP_CACHE/kwok-$(echo "$ROOT" | sha256sum | cut -c1-12).lock"
  flock 9
}

case "${1:-}" in
  up)
    [[ -n ${2:-} ]] && NODES=$2
    lock && cmd_up
    ;;
  down) lock && cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up [NODES]|down|status" >&2
    exit 2
    ;;
esac
