# Sourced by hack/cluster.sh and hack/kwok.sh (after setting ROOT): where the local cluster
# keeps its state, and the one writer of its kubeconfigs.
STATE="$ROOT/.cluster"
PKI="$STATE/pki"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
KUBECONFIG_ADMIN="$STATE/kubeconfig"
API_PORT="${DP_API_PORT:-6443}"
API_URL="https://127.0.0.1:$API_PORT"

# write_kubeconfig FILE USER CERT KEY: a kubeconfig for USER with its client cert and key.
write_kubeconfig() {
  local file=$1 user=$2 cert=$3 key=$4 b64="base64 -w0"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: datapipelines-local
  cluster:
    server: $API_URL
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $($b64 <"$cert")
    client-key-data: $($b64 <"$key")
contexts:
- name: datapipelines-local
  context: {cluster: datapipelines-local, user: $user, namespace: default}
current-context: datapipelines-local
KUBECONFIG
  chmod 600 "$file"
}
