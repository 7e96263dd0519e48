#!/usr/bin/env bash
# `make demo`: bring up a cluster, build and load the images, install the chart, apply the samples,
# then call the REST API: one synchronous run and one batch, printed as a table.
#
#   DEMO_CLUSTER=local (default here)  the project's own cluster from hack/cluster.sh (.cluster/)
#   DEMO_CLUSTER=kind                  a kind cluster on a user's machine (kind, docker, helm, kubectl)
#   DATAPIPELINES_API_KEY              the API key to use (else a random one, kept in .cluster/api-key)
#
#   hack/demo.sh down                  uninstall and stop what the demo started
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
source "$HACK/versions.sh"
STATE="$ROOT/.cluster"
NS="${DEMO_NAMESPACE:-datapipelines}"
RELEASE=datapipelines
API_URL="http://127.0.0.1:8081"
PG_PORT=55432
PG_DIR="$STATE/demo-postgres"
WAREHOUSE_DIR=/var/lib/datapipelines-demo/warehouse
SLOW_CONNECTION=demo-slow

log() { printf '[demo %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

detect_cluster() {
  if [[ -n "${DEMO_CLUSTER:-}" ]]; then echo "$DEMO_CLUSTER"; return; fi
  # The local cluster needs root (containerd, kubelet) and a Debian-like host; elsewhere use kind.
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then echo local; else echo kind; fi
}
MODE="$(detect_cluster)"

if [[ "$MODE" == local ]]; then
  export KUBECONFIG="$STATE/kubeconfig"
  KUBECTL="$KUBE_BIN/kubectl"
  HELM="$HELM_BIN/helm"
else
  KUBECTL="$(command -v kubectl)" || die "kubectl not found"
  HELM="$(command -v helm)" || die "helm not found"
fi
k() { "$KUBECTL" "$@"; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
as_postgres() { runuser -u postgres -- "$@"; }

start_postgres() {
  # Debian's PostgreSQL on 127.0.0.1:$PG_PORT: the warehouse of the demo-items-pg connection.
  local bin; bin="$(pg_bin)"; [[ -n "$bin" ]] || die "PostgreSQL binaries missing (hack/install-deps.sh)"
  if [[ -s "$PG_DIR/data/postmaster.pid" ]] && as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    log "postgres already running on 127.0.0.1:$PG_PORT"
  else
    mkdir -p "$PG_DIR" && chown postgres: "$PG_DIR"
    if [[ ! -f "$PG_DIR/data/PG_VERSION" ]]; then
      as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    fi
    as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR" start >/dev/null
    log "postgres started on 127.0.0.1:$PG_PORT"
  fi
  local password_file="$STATE/demo-warehouse-password"
  [[ -s "$password_file" ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$password_file")
  local password; password="$(cat "$password_file")"
  as_postgres "$bin/psql" -h "$PG_DIR" -p "$PG_PORT" -U postgres -qAt -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'loader') THEN CREATE ROLE loader LOGIN; END IF;
END \$\$;
ALTER ROLE loader PASSWORD '$password';
SQL
  as_postgres "$bin/psql" -h "$PG_DIR" -p "$PG_PORT" -U postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname='warehouse'" | grep -q 1 \
    || as_postgres "$bin/createdb" -h "$PG_DIR" -p "$PG_PORT" -U postgres -O loader warehouse
  k -n "$NS" create secret generic demo-warehouse --from-literal=password="$password" \
    --dry-run=client -o yaml | k apply -f - >/dev/null
}

api_key() {
  if [[ -n "${DATAPIPELINES_API_KEY:-}" ]]; then printf '%s' "$DATAPIPELINES_API_KEY"; return; fi
  local file="$STATE/api-key"
  mkdir -p "$STATE"
  [[ -s "$file" ]] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$file")
  cat "$file"
}

up() {
  local t0=$SECONDS
  if [[ "$MODE" == local ]]; then
    log "local cluster (hack/cluster.sh) — see docs/local-cluster.md"
    "$HACK/cluster.sh" up
    "$HACK/images.sh"
  else
    log "kind cluster 'datapipelines'"
    kind get clusters 2>/dev/null | grep -qx datapipelines || kind create cluster --name datapipelines
    docker build -t localhost/datapipelines:dev -f "$ROOT/deploy/docker/Dockerfile" "$ROOT"
    docker build -t localhost/datapipelines-runner:dev -f "$ROOT/runner-image/Dockerfile" "$ROOT"
    kind load docker-image --name datapipelines localhost/datapipelines:dev localhost/datapipelines-runner:dev
  fi
  k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
  # Pod Security: the demo's pods use the node's network (no kube-proxy here), which only the
  # privileged level allows; warn and audit at restricted show that nothing else would fail.
  # On a real cluster (hostNetwork=false) label it enforce=restricted (docs/security.md).
  k label --overwrite namespace "$NS" pod-security.kubernetes.io/enforce=privileged \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted >/dev/null

  # The API key lives in a Secret the chart is pointed at (api.existingSecret).
  local key; key="$(api_key)"
  k -n "$NS" create secret generic datapipelines-demo-api-key --from-literal=api-key="$key" \
    --dry-run=client -o yaml | k apply -f - >/dev/null

  # CRDs applied earlier by hand or by the tests: let this release adopt them (Helm's ownership labels).
  local crd
  for crd in pipelineconnections pipelineruns pipelinebatches; do
    if k get crd "$crd.datapipelines.io" >/dev/null 2>&1; then
      k annotate --overwrite crd "$crd.datapipelines.io" meta.helm.sh/release-name="$RELEASE" \
        meta.helm.sh/release-namespace="$NS" >/dev/null
      k label --overwrite crd "$crd.datapipelines.io" app.kubernetes.io/managed-by=Helm >/dev/null
    fi
  done

  local api_server=""
  [[ "$MODE" == local ]] && api_server="https://127.0.0.1:6443"
  # Same tag, new build: the image id as a pod annotation rolls the pods when the code changed.
  local app_id runner_id
  app_id="$(docker image inspect -f '{{.Id}}' localhost/datapipelines:dev | cut -c8-19)"
  runner_id="$(docker image inspect -f '{{.Id}}' localhost/datapipelines-runner:dev | cut -c8-19)"
  # The warehouse volume: a PersistentVolume on a node directory the runner (uid 10001) can
  # write (<dir>/<namespace>), so the DuckDB data outlives every pod.
  if [[ "$MODE" == local ]]; then
    mkdir -p "$WAREHOUSE_DIR/$NS" && chown 10001:10001 "$WAREHOUSE_DIR/$NS"
  else
    docker exec datapipelines-control-plane sh -c \
      "mkdir -p $WAREHOUSE_DIR/$NS && chown 10001:10001 $WAREHOUSE_DIR/$NS"
  fi
  log "helm upgrade --install $RELEASE"
  # The chart's image tags default to its appVersion; the images built above are tagged dev.
  "$HELM" upgrade --install "$RELEASE" "$ROOT/deploy/helm/datapipelines" -n "$NS" \
    --set hostNetwork=true --set kubeApiServer="$api_server" \
    --set warehouse.persistence.hostPath="$WAREHOUSE_DIR" \
    --set api.existingSecret=datapipelines-demo-api-key --set logFormat=text \
    --set image.tag=dev --set runner.image.tag=dev \
    --set-string "operator.podAnnotations.datapipelines\.io/image-id=$app_id" \
    --set-string "api.podAnnotations.datapipelines\.io/image-id=$app_id" \
    --wait --timeout 5m >/dev/null


  [[ "$MODE" == local ]] && start_postgres
  k -n "$NS" apply -f "$ROOT/deploy/samples/" >/dev/null
  k -n "$NS" patch deploy/demo-source --type merge >/dev/null \
    -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"datapipelines.io/image-id\":\"$runner_id\"}}}}}"
  k -n "$NS" patch deploy/trello-mock --type merge >/dev/null \
    -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"datapipelines.io/image-id\":\"$runner_id\"}}}}}"
  k -n "$NS" rollout status deploy/demo-source --timeout=120s >/dev/null
  k -n "$NS" rollout status deploy/trello-mock --timeout=120s >/dev/null
  printf '%s\n' "$SLOW_CONNECTION" >"$STATE/slow-connection"

  if [[ "$MODE" != local ]]; then
    k -n "$NS" port-forward "svc/$RELEASE-api" 8081:8081 >/dev/null 2>&1 &
    sleep 2
  fi
  log "cluster, images, chart and samples ready in $((SECONDS - t0)) s"
  DATAPIPELINES_API_KEY="$key" "$ROOT/.venv/bin/python" "$HACK/demo_calls.py" \
    --url "$API_URL" --slow-connection "$SLOW_CONNECTION" --namespace "$NS" --mode "$MODE" \
    --warehouse "$WAREHOUSE_DIR/$NS/warehouse.duckdb"

}

down() {
  if [[ "$MODE" == local ]]; then
    if [[ -s "$PG_DIR/data/postmaster.pid" ]]; then
      as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null || true
    fi
    "$HACK/cluster.sh" down
    rm -rf "$WAREHOUSE_DIR"  # the DuckDB files of the samples
  else
    kind delete cluster --name datapipelines
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) die "usage: hack/demo.sh [up|down]" ;;
esac
