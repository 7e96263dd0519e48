"""Kubernetes identities: a bearer token verified with a TokenReview, each question of access
answered by a SubjectAccessReview, both cached briefly and bounded.

So the RBAC that governs ``kubectl`` governs the REST API, MCP and (through them) the CLI:
``read`` is ``get pipelineconnections``, ``run`` is ``create pipelineruns`` and ``cancel`` is
``patch pipelineruns`` in the object's namespace. The API's own ServiceAccount needs only
``create`` on ``tokenreviews`` and ``subjectaccessreviews`` (the chart's
``api.kubernetesAuth.enabled``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from datapipelines.api.access import Caller, Verb
from datapipelines.api.apiserver import REQUEST_ERRORS, ApiServer, timeout_of
from datapipelines.api.errors import KubeUnavailable
from datapipelines.resources import CONNECTION_PLURAL, GROUP, RUN_PLURAL

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REVIEW_TIMEOUT = timeout_of(3, 5)
CACHE_ENTRIES = 4096
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#: each verb of the API as the RBAC rule it needs on the project's resources
RBAC_OF: dict[Verb, tuple[str, str]] = {
    Verb.READ: ("get", CONNECTION_PLURAL),
    Verb.RUN: ("create", RUN_PLURAL),
    Verb.CANCEL: ("patch", RUN_PLURAL),
}

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """At most `size` entries, each for `ttl` seconds (oldest dropped first)."""

    def __init__(
        self, ttl: float, size: int = CACHE_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.size, self._clock = ttl, size, clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        hit = self._entries.get(key)
        if hit is None or hit[0] <= self._clock():
            self._entries.pop(key, None)
            return False, None
        return True, hit[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def as_spec(self) -> Obj:
        spec: Obj = {"user": self.username, "groups": list(self.groups)}
        if self.uid:
            spec["uid"] = self.uid
        if self.extra:
            spec["extra"] = {k: list(v) for k, v in self.extra}
        return spec


Poster = Callable[[str, Obj], Awaitable[Obj]]


def apiserver_poster(api: Callable[[], ApiServer | None]) -> Poster:
    """POST a review to the apiserver the store talks to (503 while it is not configured)."""

    async def post(path: str, body: Obj) -> Obj:
        client = api()
        if client is None:
            raise KubeUnavailable("Kubernetes API not reachable: not connected yet")
        try:
            return await client.request("POST", path, body=body, deadline=REVIEW_TIMEOUT)
        except REQUEST_ERRORS as exc:
            raise KubeUnavailable(f"Kubernetes API did not answer a review: {exc}") from None

    return post


class KubeAuth:
    """TokenReviews and SubjectAccessReviews, cached for `cache_seconds`."""

    def __init__(
        self, post: Poster, cache_seconds: float = 10.0, audiences: list[str] | None = None
    ) -> None:
        self._post = post
        self._audiences = audiences or []
        self._tokens: TtlCache[bytes, UserInfo | None] = TtlCache(cache_seconds)
        self._decisions: TtlCache[tuple[UserInfo, Verb, str], bool] = TtlCache(cache_seconds)

    async def authenticate(self, token: str) -> KubeUser | None:
        """The user the token belongs to, None when the apiserver rejects it."""
        key = hashlib.sha256(token.encode()).digest()
        hit, user = self._tokens.get(key)
        if not hit:
            spec: Obj = {"token": token}
            if self._audiences:
                spec["audiences"] = self._audiences
            review = await self._post(
                TOKEN_REVIEW_PATH,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
            )
            user = user_of_review(review)
            self._tokens.put(key, user)
        return None if user is None else KubeUser(user, self)

    async def allowed(self, user: UserInfo, verb: Verb, namespace: str) -> bool:
        hit, decision = self._decisions.get((user, verb, namespace))
        if hit:
            return bool(decision)
        rbac_verb, resource = RBAC_OF[verb]
        review = await self._post(
            ACCESS_REVIEW_PATH,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    **user.as_spec(),
                    "resourceAttributes": {
                        "namespace": namespace,
                        "verb": rbac_verb,
                        "group": GROUP,
                        "resource": resource,
                    },
                },
            },
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put((user, verb, namespace), allowed)
        return allowed


def user_of_review(review: Obj) -> UserInfo | None:
    status = review.get("status") or {}
    if not status.get("authenticated"):
        return None
    user = status.get("user") or {}
    name = user.get("username")
    if not isinstance(name, str) or not name:
        return None
    extra = user.get("extra") or {}
    return UserInfo(
        username=name,
        uid=str(user.get("uid") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        extra=tuple(sorted((str(k), tuple(map(str, v or ()))) for k, v in extra.items())),
    )


class KubeUser(Caller):
    """A Kubernetes identity; each question is a (cached) SubjectAccessReview."""

    def __init__(self, user: UserInfo, auth: KubeAuth) -> None:
        self.user = user
        self.id = f"user:{user.username}"
        self._auth = auth

    async def may(self, verb: Verb, namespace: str) -> bool:
        return await self._auth.allowed(self.user, verb, namespace)

    def describe(self) -> str:
        return (
            "its RBAC decides (read = get pipelineconnections, run = create pipelineruns, "
            "cancel = patch pipelineruns)"
        )
