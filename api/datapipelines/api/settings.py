"""The one settings object of the API, read from the environment (see docs/contracts.md).

`DATAPIPELINES_API_KEY` may be *unset*: the contract says the server still starts and answers
every keyed endpoint with 500 and a message saying the key is not configured. A key that is set
to an obvious placeholder (`changeme`, `<your-key>`, …) is refused at start-up instead: that is a
deployment mistake, not an unconfigured server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from datapipelines.resources.namespaces import watched

SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

PLACEHOLDER_KEYS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "replaceme",
        "replace-me",
        "<your-key>",
        "your-key",
        "placeholder",
        "secret",
        "xxx",
        "todo",
    }
)


class Settings(BaseSettings):
    """Settings of the API process; every field is read from `DATAPIPELINES_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="DATAPIPELINES_", extra="ignore", populate_by_name=True
    )

    api_key: SecretStr | None = Field(
        default=None,
        description="Accepted API keys, comma-separated (several keys allow rotation).",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="A keys file of scoped API keys (ids, namespaces, verbs; see "
        "docs/security.md), re-read when it changes.",
    )
    kubernetes_auth: bool = Field(
        default=False,
        description="Accept `Authorization: Bearer <token>` (ServiceAccount or OIDC tokens), "
        "verified by TokenReview and authorized by SubjectAccessReview.",
    )
    kubernetes_auth_cache_seconds: float = Field(
        default=10.0, ge=0, le=300, description="How long a token's or a decision's review holds."
    )
    console: bool = Field(default=True, description="Serve the web console at /ui/.")
    console_secret: SecretStr | None = Field(
        default=None,
        description="Signs console sessions; default: derived from DATAPIPELINES_API_KEY.",
    )
    console_session_seconds: int = Field(
        default=8 * 3600, ge=60, le=30 * 24 * 3600, description="How long a sign-in lasts."
    )
    console_secure_cookie: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure; default: when the request came over "
        "HTTPS (X-Forwarded-Proto behind a proxy).",
    )
    api_host: str = "0.0.0.0"
    api_port: int = Field(default=8081, ge=1, le=65535)
    namespace: str | None = Field(
        default=None,
        description="Namespaces served: not set = the pod's own (else `default`); empty or `*` "
        "= all namespaces; `a,b` = those.",
    )
    kubeconfig: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATAPIPELINES_KUBECONFIG", "KUBECONFIG", "kubeconfig"),
        description="kubeconfig file outside a cluster; in-cluster config when unset.",
    )
    history_dsn: SecretStr | None = Field(
        default=None, description="PostgreSQL DSN of the run archive (optional)."
    )
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    run_wait_seconds: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("DATAPIPELINES_API_RUN_WAIT_SECONDS", "run_wait_seconds"),
        description=(
            "How long `POST /connections/{name}/run` waits for the run's end before answering "
            "504 with the run id. Default: the connection's timeoutSeconds x (retries + 1) + 600."
        ),
    )
    watch_timeout_seconds: int = Field(
        default=300, ge=10, description="Server-side timeout of one watch request."
    )

    @field_validator("api_key", "history_dsn", "api_keys_file", "console_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("api_key")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for key in _split_keys(value.get_secret_value()):
            if key.lower() in PLACEHOLDER_KEYS:
                raise ValueError(
                    "DATAPIPELINES_API_KEY holds a placeholder value; set a real random key"
                )
        return value

    @property
    def api_keys(self) -> list[str]:
        """The accepted keys; empty when `DATAPIPELINES_API_KEY` is not configured."""
        if self.api_key is None:
            return []
        return _split_keys(self.api_key.get_secret_value())

    def watched_namespaces(self, sa_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> list[str]:
        """The namespaces to serve ([] = all): see ``datapipelines.resources.namespaces``."""
        try:
            own = sa_file.read_text().strip()
        except OSError:
            own = ""
        return watched(self.namespace, own or "default")


def _split_keys(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]
