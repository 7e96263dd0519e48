"""A minimal apiserver client (stdlib urllib) for the runner's two writes: merge-patch the
status of this pod's PipelineRun, and JSON-patch a rotated OAuth 2.0 refresh token into its
Secret (oauth2.py).

In a cluster: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, or the URL in
$DATAPIPELINES_KUBE_API; the service account's token (re-read on every call: projected tokens
rotate) and CA from /var/run/secrets/kubernetes.io/serviceaccount.
"""

from __future__ import annotations

import contextlib
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


class ApiError(RuntimeError):
    """The apiserver answered an error status (``status``) or could not be reached (0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token_file: Path | None,
        ca_file: Path | None,
        timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if self.base_url.startswith("https://"):
            if ca_file is not None and ca_file.exists():
                self._ssl = ssl.create_default_context(cafile=str(ca_file))
            else:
                self._ssl = ssl.create_default_context()

    @classmethod
    def from_env(cls, env: RunnerEnv) -> ApiClient | None:
        """A client when the pod can reach the apiserver; else None."""
        base = env.kube_api or in_cluster_url()
        if not base:
            return None
        sa_dir = Path(env.service_account_dir)
        token = sa_dir / "token"
        return cls(base, token_file=token if token.exists() else None, ca_file=sa_dir / "ca.crt")

    def patch(self, path: str, body: Any, content_type: str, dry_run: bool = False) -> Any:
        """PATCH ``path`` with ``body`` (JSON); the answer's JSON. ApiError on any failure."""
        url = f"{self.base_url}{path}" + ("?dryRun=All" if dry_run else "")
        data = json.dumps(body, separators=(",", ":")).encode()
        request = urllib.request.Request(url, data=data, method="PATCH")
        request.add_header("Content-Type", content_type)
        request.add_header("Accept", "application/json")
        if self.token_file is not None:
            token = self.token_file.read_text(encoding="utf-8").strip()
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(json.loads(detail).get("message") or detail)
            raise ApiError(exc.code, f"HTTP {exc.code} from PATCH {url}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"PATCH {url} failed: {exc}") from None


class StatusClient:
    """Merge-patches the status of this pod's own PipelineRun."""

    def __init__(self, api: ApiClient, namespace: str, run_name: str) -> None:
        self.api = api
        self.timeout = api.timeout
        self.path = f"/apis/{API_VERSION}/namespaces/{namespace}/{RUN_PLURAL}/{run_name}/status"
        self.url = f"{api.base_url}{self.path}"

    @classmethod
    def from_env(cls, env: RunnerEnv) -> StatusClient | None:
        """A client when the pod can reach the apiserver and knows its run; else None."""
        if not env.run_name or not env.namespace:
            return None
        api = ApiClient.from_env(env)
        return cls(api, env.namespace, env.run_name) if api is not None else None

    def patch_status(self, status: dict[str, Any]) -> None:
        """Merge-patches `{"status": status}`; raises on any failure."""
        self.api.patch(self.path, {"status": status}, "application/merge-patch+json")
