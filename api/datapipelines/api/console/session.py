"""The console's session: a signed cookie that names an API key by its SHA-256 digest.

Signing in with a key the API accepts gives a cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
behind TLS, an expiry): ``<payload>.<signature>``, the payload the key's digest (never the key),
a CSRF token and the expiry, signed with HMAC-SHA256. Each request finds the key again by its
digest, so a key removed from the keys file (or from DATAPIPELINES_API_KEY) ends its sessions at
once, and a scoped key's session has the key's scope. The signing secret is
DATAPIPELINES_CONSOLE_SECRET, else derived from DATAPIPELINES_API_KEY (the same on every replica
and across restarts), else random per process (sessions end with it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "dp_console"
LOGIN_COOKIE = "dp_console_login"  # the sign-in form's own CSRF token (double submit)
COOKIE_PATH = "/ui"


@dataclass(frozen=True)
class Session:
    digest: bytes  # SHA-256 of the API key
    csrf: str
    expires: int  # epoch seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_secret(configured: str | None, unscoped_digests: list[bytes]) -> bytes:
    """The signing secret: the configured one, else one derived from the unscoped keys'
    digests (stable across replicas and restarts), else random (this process only)."""
    if configured:
        return hashlib.sha256(b"datapipelines-console:" + configured.encode()).digest()
    if unscoped_digests:
        material = b"".join(sorted(unscoped_digests))
        return hmac.new(b"datapipelines-console", material, hashlib.sha256).digest()
    return secrets.token_bytes(32)


class SessionSigner:
    def __init__(self, secret: bytes, lifetime: int) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def new(self, digest: bytes, now: float | None = None) -> tuple[Session, str]:
        """A session for the key of `digest` and its cookie value."""
        expires = int((time.time() if now is None else now) + self.lifetime)
        session = Session(digest=digest, csrf=secrets.token_urlsafe(24), expires=expires)
        body = json.dumps({"d": digest.hex(), "c": session.csrf, "e": expires}).encode()
        payload = _b64(body)
        return session, f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value; None when absent, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(bytes.fromhex(data["d"]), str(data["c"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= (time.time() if now is None else now):
            return None
        return session


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())
