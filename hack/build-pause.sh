#!/usr/bin/env bash
# Build the pod sandbox ("pause") image without any registry or docker: a static C binary in an
# image FROM scratch, written as a `docker save`-format tarball that both `ctr images import`
# and `docker load` accept. Cached under ~/.cache/datapipelines/images/; prints the tar's path.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HACK/versions.sh"
PAUSE_IMAGE="${PAUSE_IMAGE:-localhost/pause:3.10-dp}"
src="$HACK/pause/pause.c"
key="$( (cat "$src"; echo "$PAUSE_IMAGE") | sha256sum | cut -c1-12)"
out="$DP_CACHE/images/pause-$key.tar"
if [[ -s "$out" ]]; then echo "$out"; exit 0; fi
mkdir -p "$DP_CACHE/images"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/img"
gcc -Os -static -Wall -o "$work/rootfs/pause" "$src"
strip "$work/rootfs/pause"
# Reproducible layer: fixed mtime/owner.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/img/layer.tar" pause
python3 - "$work/img" "$PAUSE_IMAGE" <<'PY'
import hashlib, json, os, sys
d, ref = sys.argv[1], sys.argv[2]
layer = open(os.path.join(d, "layer.tar"), "rb").read()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = {
    "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/"},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/build-pause.sh"}],
}
raw = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
cfg_name = hashlib.sha256(raw).hexdigest() + ".json"
open(os.path.join(d, cfg_name), "wb").write(raw)
json.dump([{"Config": cfg_name, "RepoTags": [ref], "Layers": ["layer.tar"]}],
          open(os.path.join(d, "manifest.json"), "w"))
PY
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/img" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out"
