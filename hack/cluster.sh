#!/usr/bin/env bash
# A real single-node Kubernetes as local processes on 127.0.0.1:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a private containerd, kubelet.
# State: <repo>/.cluster/ (git-ignored). Admin kubeconfig: <repo>/.cluster/kubeconfig.
#
#   hack/cluster.sh up       build/caches binaries, starts everything, returns when the node is Ready
#   hack/cluster.sh down     stops exactly the recorded processes, unmounts, removes .cluster/
#   hack/cluster.sh status   what runs, node and health
#   hack/cluster.sh env      prints `export KUBECONFIG=… PATH=…` for a shell
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
source "$HACK/versions.sh"
# shellcheck source=layout.sh
source "$HACK/layout.sh"

CTRD_DIR="$STATE/containerd"
CTRD_SOCK="$CTRD_DIR/containerd.sock"
NODE_NAME="${DP_NODE_NAME:-datapipelines-node}"
# Ports (all on 127.0.0.1). Overridable only to run a second, throw-away cluster beside the
# usual one (e.g. to test these scripts from another checkout while others use the cluster).
# API_PORT (DP_API_PORT) is in layout.sh
ETCD_PORT="${DP_ETCD_PORT:-2379}" # peer = +1, metrics = +2
KUBELET_PORT="${DP_KUBELET_PORT:-10250}"
KUBELET_HEALTHZ_PORT="${DP_KUBELET_HEALTHZ_PORT:-10248}"
CM_PORT="${DP_CONTROLLER_MANAGER_PORT:-10257}"
SCHED_PORT="${DP_SCHEDULER_PORT:-10259}"
# cgroup (v1, cgroupfs driver) parent of the kubelet's kubepods hierarchy
CGROUP_ROOT="${DP_CGROUP_ROOT:-/}"
SERVICE_CIDR="10.96.0.0/24" # allocation only: there is no kube-proxy, nothing routes to it
PAUSE_IMAGE="${PAUSE_IMAGE:-localhost/pause:3.10-dp}"
# start order; `down` goes in reverse
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr() { command ctr --address "$CTRD_SOCK" "$@"; }

pid_of() { [[ -s "$PIDS/$1.pid" ]] && cat "$PIDS/$1.pid"; }
alive() {
  local pid
  pid="$(pid_of "$1")" || return 1
  # the pid must still be the process we started (same binary), not a recycled pid
  [[ -d /proc/$pid ]] && grep -qF -- "$(cat "$PIDS/$1.exe")" "/proc/$pid/cmdline" 2>/dev/null
}

# start NAME BINARY ARGS...: detached (own session), logs to .cluster/logs/NAME.log, pid recorded
start() {
  local name=$1
  shift
  if alive "$name"; then
    log "$name already running (pid $(pid_of "$name"))"
    return
  fi
  mkdir -p "$LOGS" "$PIDS"
  printf '%s' "$1" >"$PIDS/$name.exe"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
  log "started $name (pid $!)"
}

# wait_for WHAT TIMEOUT_S COMPONENT CMD...: poll CMD until it succeeds; dump the log on timeout
wait_for() {
  local what=$1 timeout=$2 comp=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $comp ]] && ! alive "$comp"; then
      tail -n 40 "$LOGS/$comp.log" >&2 || true
      die "$comp exited while waiting for $what (log: $LOGS/$comp.log)"
    fi
    if ((SECONDS >= deadline)); then
      [[ -n $comp ]] && tail -n 40 "$LOGS/$comp.log" >&2
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- certificates
gen_pki() {
  [[ -f $PKI/.done ]] && return
  log "generating CA and certificates in $PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=datapipelines-local-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    # name CN O SAN(optional) USAGE(server|client|both)
    cert() {
      local name=$1 cn=$2 o=$3 san=$4 usage=$5 subj="/CN=$2" eku
      [[ -n $o ]] && subj="/O=$o/CN=$cn"
      case $usage in server) eku=serverAuth ;; client) eku=clientAuth ;; both) eku=serverAuth,clientAuth ;; esac
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$eku"
        [[ -n $san ]] && echo "subjectAltName=$san"
      } >"$name.ext"
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
      rm -f "$name.csr" "$name.ext"
    }
    local api_san="IP:127.0.0.1,IP:${SERVICE_CIDR%.*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default"
    api_san+=",DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert etcd-server etcd "" "IP:127.0.0.1,DNS:localhost" both
    cert apiserver-etcd-client kube-apiserver-etcd-client "" "" client
    cert apiserver kube-apiserver "" "$api_san" server
    cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
    cert admin kubernetes-admin system:masters "" client
    cert controller-manager system:kube-controller-manager "" "" client
    cert scheduler system:kube-scheduler "" "" client
    cert front-proxy-client front-proxy-client "" "" client
    cert kubelet "system:node:$NODE_NAME" system:nodes "" client
    cert kubelet-serving "system:node:$NODE_NAME" system:nodes "IP:127.0.0.1,DNS:localhost,DNS:$NODE_NAME" server
    # service-account token signing key (ES256)
    openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
    openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
    touch .done
  )
}

# kubeconfig FILE CERTNAME: the cert pair $PKI/CERTNAME.{crt,key}
write_cluster_kubeconfig() {
  write_kubeconfig "$1" "$2" "$PKI/$2.crt" "$PKI/$2.key"
}

# ---------------------------------------------------------------- components
start_etcd() {
  start etcd "$ETCD_BIN/etcd" \
    --name=default --data-dir="$STATE/etcd" \
    --listen-client-urls="https://127.0.0.1:$ETCD_PORT" --advertise-client-urls="https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster="default=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --listen-metrics-urls="http://127.0.0.1:$((ETCD_PORT + 2))" \
    --cert-file="$PKI/etcd-server.crt" --key-file="$PKI/etcd-server.key" \
    --trusted-ca-file="$PKI/ca.crt" --client-cert-auth=true \
    --unsafe-no-fsync=true --quota-backend-bytes=2147483648 \
    --log-level=warn
  wait_for "etcd health" 60 etcd curl -sf "http://127.0.0.1:$((ETCD_PORT + 2))/health"
}

start_apiserver() {
  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --etcd-servers="https://127.0.0.1:$ETCD_PORT" --etcd-cafile="$PKI/ca.crt" \
    --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --requestheader-client-ca-file="$PKI/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --allow-privileged=true --endpoint-reconciler-type=none \
    --profiling=false --cert-dir="$STATE/apiserver" --v=1
  wait_for "kube-apiserver /readyz" 120 kube-apiserver \
    curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL/readyz"
}

start_controller_manager() {
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$CM_PORT" --cert-dir="$STATE/controller-manager" \
    --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false \
    --kube-api-qps=200 --kube-api-burst=400 --concurrent-job-syncs=20 \
    --leader-elect=false --profiling=false --v=1
}

start_scheduler() {
  start kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$STATE/scheduler" \
    --leader-elect=false --profiling=false --v=1
}

write_containerd_config() {
  mkdir -p "$CTRD_DIR" "$STATE/cni/net.d"
  # Pods use hostNetwork; this only makes the runtime report NetworkReady (and gives any
  # non-hostNetwork pod a loopback interface and nothing else).
  cat >"$STATE/cni/net.d/10-loopback.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "datapipelines-loopback",
  "plugins": [{"type": "loopback"}]
}
EOF
  cat >"$CTRD_DIR/config.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_DIR/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine lacks CAP_SYS_RESOURCE: negative oom_score_adj values are refused and runc
  # then fails with "can't get final child's PID from pipe". Never ask for less than ours.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 65536
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
EOF
}

start_containerd() {
  write_containerd_config
  start containerd /usr/bin/containerd --config "$CTRD_DIR/config.toml" --log-level warn
  wait_for "containerd socket" 60 containerd ctr version
  # the sandbox image, made locally (no registry); tiny, so imported on every start
  local pause_tar
  pause_tar="$("$HACK/build-pause.sh")"
  ctr -n k8s.io images import --no-unpack "$pause_tar" >/dev/null
  log "imported $PAUSE_IMAGE"
}

write_kubelet_config() {
  mkdir -p "$STATE/kubelet"
  cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
cgroupRoot: $CGROUP_ROOT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$CTRD_SOCK
imageServiceEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
oomScoreAdj: 0
maxOpenFiles: 10000
makeIPTablesUtilChains: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
registerNode: true
serializeImagePulls: false
# disk is shared with other work: evict only when really short
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
evictionPressureTransitionPeriod: 30s
# containerd 1.6 does not pin the sandbox image: never garbage-collect images by disk usage
# (the kubelet only GCs unused images above the high threshold; 100 never triggers).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
nodeStatusUpdateFrequency: 5s
nodeStatusReportFrequency: 30s
syncFrequency: 10s
fileCheckFrequency: 10s
volumeStatsAggPeriod: 60s
cpuManagerReconcilePeriod: 10s
shutdownGracePeriod: 0s
logging: {format: text}
EOF
}

start_kubelet() {
  write_kubelet_config
  if [[ $CGROUP_ROOT != / ]]; then # the kubelet wants its cgroup root to exist already
    local h
    for h in /sys/fs/cgroup/*/; do
      [[ -f $h/cgroup.procs ]] && mkdir -p "$h${CGROUP_ROOT#/}"
    done
  fi
  start kubelet "$KUBE_BIN/kubelet" \
    --config="$STATE/kubelet-config.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" \
    --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" \
    --hostname-override="$NODE_NAME" --node-ip=127.0.0.1 \
    --pod-infra-container-image="$PAUSE_IMAGE" \
    --v=1
}

# The kubelet refuses a loopback --node-ip ("nodeIP can't be loopback address") and then sets no
# address at all; every other choice would publish the host's eth0 address. So `up` sets the
# node's addresses itself: the kubelet's status updates only patch what its setters changed and
# leave them in place. The apiserver reaches the kubelet at InternalIP 127.0.0.1 (port $KUBELET_PORT).
node_addressed() {
  [[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null)" == 127.0.0.1 ]]
}
set_node_address() {
  node_addressed && return
  kubectl patch node "$NODE_NAME" --subresource=status --type=merge -p \
    "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"$NODE_NAME\"}]}}" >/dev/null
}

node_ready() {
  [[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
workload_ready() {
  node_ready && node_addressed && kubectl -n default get serviceaccount default >/dev/null 2>&1 &&
    kubectl -n default get configmap kube-root-ca.crt >/dev/null 2>&1
}

all_alive() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
}

# ---------------------------------------------------------------- commands
cmd_up() {
  local t0=$SECONDS
  if all_alive && workload_ready; then
    log "cluster already up and node $NODE_NAME Ready ($API_URL, KUBECONFIG=$KUBECONFIG_ADMIN)"
    return
  fi
  if [[ -d $STATE/pids ]] && ! all_alive; then
    log "found a partial cluster in $STATE; tearing it down first"
    cmd_down
  fi
  kill_shims orphans
  # unix socket paths are limited to 108 bytes; the longest one we create is the kubelet's
  local longest="$STATE/kubelet/plugins_registry/x/kubelet.sock"
  ((${#longest} < 100)) || die "checkout path too long for unix sockets under $STATE: move the checkout"
  "$HACK/install-deps.sh"
  "$HACK/build-binaries.sh" etcd kubernetes helm
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  mkdir -p "$STATE" "$LOGS" "$PIDS"
  gen_pki
  write_cluster_kubeconfig "$KUBECONFIG_ADMIN" admin
  write_cluster_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  write_cluster_kubeconfig "$STATE/scheduler.kubeconfig" scheduler
  write_cluster_kubeconfig "$STATE/kubelet.kubeconfig" kubelet

  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_containerd
  start_kubelet
  wait_for "node $NODE_NAME registered" 120 kubelet kubectl get node "$NODE_NAME"
  set_node_address
  wait_for "node $NODE_NAME Ready" 180 kubelet node_ready
  wait_for "default ServiceAccount and kube-root-ca.crt" 60 kube-controller-manager workload_ready
  wait_for "kube-scheduler" 30 kube-scheduler true
  log "cluster up: node $NODE_NAME Ready after $((SECONDS - t0)) s"
  log "export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$KUBE_BIN:\$PATH"
  echo "ready_seconds=$((SECONDS - t0))"
}

# stop NAME...: SIGTERM the recorded processes together, SIGKILL what is left after 10 s
stop_pids() {
  local name pid left
  declare -A pids=()
  for name in "$@"; do
    if alive "$name"; then
      pids[$name]="$(pid_of "$name")"
      kill -TERM "${pids[$name]}" 2>/dev/null || true
    fi
    rm -f "$PIDS/$name.pid"
  done
  for _ in $(seq 1 50); do
    left=0
    for name in "${!pids[@]}"; do [[ -d /proc/${pids[$name]} ]] && left=1; done
    ((left)) || break
    sleep 0.2
  done
  for name in "${!pids[@]}"; do
    pid=${pids[$name]}
    if [[ -d /proc/$pid ]]; then
      log "$name (pid $pid) ignored SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  done
}

# containers survive containerd (their shims are reparented): stop them while containerd runs
stop_containers() {
  [[ -S $CTRD_SOCK ]] && alive containerd || return 0
  local ns t
  for ns in k8s.io default; do
    for t in $(ctr -n "$ns" tasks ls -q 2>/dev/null); do
      ctr -n "$ns" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for t in $(ctr -n "$ns" tasks ls -q 2>/dev/null); do
      ctr -n "$ns" tasks delete -f "$t" >/dev/null 2>&1 || true
    done
  done
}

# kill_tree PID: SIGKILL the process and all its descendants (a shim and its containers)
kill_tree() {
  local pids=()
  mapfile -t pids < <(ps -eo pid=,ppid= | awk -v r="$1" '{pp[$1] = $2}
    END { keep[r] = 1; more = 1
          while (more) { more = 0; for (p in pp) if (!(p in keep) && (pp[p] in keep)) { keep[p] = 1; more = 1 } }
          for (p in keep) print p }')
  ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
  return 0
}

# Container shims are reparented to init and outlive containerd (and a killed session). Shims of
# *our* containerd carry our socket in their command line; `down` kills those. `up` also reaps the
# shims of any checkout's cluster whose containerd is gone (a session ended without `down`), so
# their host-network containers do not keep ports busy.
kill_shims() { # kill_shims ours|orphans
  local p cmd sock
  for p in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" || continue
    [[ $cmd =~ ^/usr/bin/containerd-shim-runc-v2\ .*-address\ (/[^ ]*/\.cluster/containerd/containerd\.sock)\  ]] || continue
    sock=${BASH_REMATCH[1]}
    if [[ $1 == ours ]]; then
      [[ $sock == "$CTRD_SOCK" ]] || continue
    else
      # its containerd still answers: not an orphan
      timeout 5 ctr --address "$sock" version >/dev/null 2>&1 && continue
    fi
    log "killing shim ${p#/proc/} and its containers (of $sock)"
    kill_tree "${p#/proc/}"
  done
}

unmount_state() {
  local m mounts
  for _ in 1 2 3; do
    # deepest first; mountinfo escapes spaces as \040
    mapfile -t mounts < <(awk -v s="$STATE" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    ((${#mounts[@]})) || return 0
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
  done
}

# the kubelet (cgroupfs driver) made kubepods under each v1 hierarchy; remove when empty
remove_cgroups() {
  local d left pattern="/sys/fs/cgroup/*${CGROUP_ROOT%/}/kubepods"
  [[ $CGROUP_ROOT != / ]] && pattern="/sys/fs/cgroup/*$CGROUP_ROOT"
  for _ in $(seq 1 20); do # killed processes leave their cgroups a moment later
    left=0
    for d in $pattern; do
      [[ -d $d ]] || continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [[ -d $d ]] && left=1
    done
    ((left)) || return 0
    sleep 0.5
  done
  for d in $pattern; do [[ -d $d ]] && log "cgroup $d still in use; left in place"; done
  return 0
}

cmd_down() {
  if [[ ! -d $STATE ]]; then
    log "no cluster state at $STATE"
    return
  fi
  stop_pids kwok # hack/kwok.sh's fake-node controller, when it runs (its pid is recorded here too)
  stop_pids kubelet
  stop_containers
  stop_pids containerd kube-scheduler kube-controller-manager
  stop_pids kube-apiserver
  stop_pids etcd
  kill_shims ours
  unmount_state
  remove_cgroups
  rm -rf "$STATE"
  log "cluster down; $STATE removed"
}

cmd_status() {
  local c rc=0
  if [[ ! -d $STATE ]]; then
    echo "cluster: down (no $STATE)"
    return 1
  fi
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then printf '  %-24s running (pid %s)\n' "$c" "$(pid_of "$c")"; else
      printf '  %-24s NOT running\n' "$c"
      rc=1
    fi
  done
  if curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL/readyz" >/dev/null 2>&1; then
    echo "  apiserver               $API_URL ready"
    kubectl get nodes -o wide 2>&1 | sed 's/^/  /'
  else
    echo "  apiserver               $API_URL NOT ready"
    rc=1
  fi
  echo "  KUBECONFIG=$KUBECONFIG_ADMIN"
  return $rc
}

# up/down of one checkout's cluster run one at a time (test sessions may call up concurrently);
# fd 9 is closed for the started processes so they do not hold the lock
lock() {
  mkdir -p "$DP_CACHE"
  exec 9>"$DP_CACHE/cluster-$(echo "$ROOT" | sha256sum | cut -c1-12).lock"
  flock 9
}

case "${1:-}" in
  up) lock && cmd_up ;;
  down) lock && cmd_down ;;
  status) cmd_status ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$KUBE_BIN:$HELM_BIN:\$PATH" ;;
  *)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
