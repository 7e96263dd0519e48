"""A minimal apiserver client (stdlib urllib): merge-patch the status of this pod's PipelineRun.

In a cluster: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, or the URL in
$DATAPIPELINES_KUBE_API; the service account's token (re-read on every call: projected tokens
rotate) and CA from /var/run/secrets/kubernetes.io/serviceaccount.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from datapipelines.resources import API_VERSION, RUN_PLURAL
from datapipelines.resources.incluster import in_cluster_url

from .config import RunnerEnv

log = logging.getLogger(__name__)


class StatusClient:
    def __init__(
        self,
        base_url: str,
        namespace: str,
        run_name: str,
        token_file: Path | None,
        ca_file: Path | None,
        timeout: float = 5.0,
    ) -> None:
        self.url = (
            f"{base_url.rstrip('/')}/apis/{API_VERSION}/namespaces/{namespace}"
            f"/{RUN_PLURAL}/{run_name}/status"
        )
        self.token_file = token_file
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if self.url.startswith("https://"):
            if ca_file is not None and ca_file.exists():
                self._ssl = ssl.create_default_context(cafile=str(ca_file))
            else:
                self._ssl = ssl.create_default_context()

    @classmethod
    def from_env(cls, env: RunnerEnv) -> StatusClient | None:
        """A client when the pod can reach the apiserver and knows its run; else None."""
        if not env.run_name or not env.namespace:
            return None
        base = env.kube_api or in_cluster_url()
        if not base:
            return None
        sa_dir = Path(env.service_account_dir)
        token = sa_dir / "token"
        return cls(
            base,
            env.namespace,
            env.run_name,
            token_file=token if token.exists() else None,
            ca_file=sa_dir / "ca.crt",
        )

    def patch_status(self, status: dict[str, Any]) -> None:
        """Merge-patches `{"status": status}`; raises on any failure."""
        body = json.dumps({"status": status}, separators=(",", ":")).encode()
        request = urllib.request.Request(self.url, data=body, method="PATCH")
        request.add_header("Content-Type", "application/merge-patch+json")
        request.add_header("Accept", "application/json")
        if self.token_file is not None:
            token = self.token_file.read_text(encoding="utf-8").strip()
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace")
            raise RuntimeError(f"HTTP {exc.code} from PATCH {self.url}: {detail}") from None
