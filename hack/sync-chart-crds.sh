#!/usr/bin/env bash
# Copy crds/ (the one source of the CRD schemas) into the Helm chart. tests/unit/chart checks they match.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/deploy/helm/datapipelines/files/crds"
mkdir -p "$dest"
rm -f "$dest"/*.yaml
cp "$root"/crds/*.yaml "$dest"/
echo "synced $(ls "$dest" | wc -l) CRDs into $dest"
