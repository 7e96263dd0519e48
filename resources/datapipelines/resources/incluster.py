"""The apiserver as a pod sees it, the way client-go's in-cluster config reads it. Pure."""

from __future__ import annotations

import os
from collections.abc import Mapping

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` (IPv6 bracketed), or None
    outside a cluster. The chart points these two at the apiserver itself where the
    ``kubernetes`` Service is unreachable (the local cluster has no kube-proxy)."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"
