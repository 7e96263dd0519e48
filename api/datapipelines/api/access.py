"""Who may do what: the verbs of the API and the callers that hold them (pure, no I/O).

Three verbs cover every endpoint: ``read`` (list, status, task status, history, logs), ``run``
(run, run_async, run_selected) and ``cancel``. A caller is asked one question, ``may(verb,
namespace)``. A namespace where a caller may do nothing does not exist for it: its connections,
runs and batches answer 404 exactly as unknown names do (names do not leak across teams); an
object it sees but may not act on answers 403 naming the missing verb.

Callers: an API key of the keys file (``KeyCaller``: namespaces and verbs of its own), a key of
``DATAPIPELINES_API_KEY`` (every verb everywhere, the seed's rule) and a Kubernetes identity
(``kubeauth.KubeUser``: each question is a SubjectAccessReview, cached).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from enum import StrEnum

from datapipelines.api.errors import Forbidden


class Verb(StrEnum):
    READ = "read"
    RUN = "run"
    CANCEL = "cancel"


ALL_VERBS = frozenset(Verb)


class Caller(ABC):
    """Who sent a request: `id` names it in the audit log (never a secret)."""

    id: str

    @property
    def unrestricted(self) -> bool:
        """True when it may do everything everywhere (lets the services skip filtering)."""
        return False

    @abstractmethod
    async def may(self, verb: Verb, namespace: str) -> bool:
        """Whether it may `verb` the project's objects of `namespace`."""

    async def sees(self, namespace: str) -> bool:
        """Whether `namespace` exists for it: it holds at least one verb there."""
        for verb in Verb:
            if await self.may(verb, namespace):
                return True
        return False

    async def seen(self, namespaces: Iterable[str]) -> set[str]:
        """The namespaces of `namespaces` that exist for it."""
        return {ns for ns in set(namespaces) if self.unrestricted or await self.sees(ns)}

    async def where(self, verb: Verb, namespaces: Iterable[str]) -> set[str]:
        """The namespaces of `namespaces` where it may `verb`."""
        return {ns for ns in set(namespaces) if self.unrestricted or await self.may(verb, ns)}

    async def require(self, verb: Verb, namespace: str, **extra: object) -> None:
        """Forbidden (403, `missing` = the verb) unless it may `verb` in `namespace`. Call it
        on objects it sees (404 for the others is the caller's lookup's job)."""
        if self.unrestricted or await self.may(verb, namespace):
            return
        raise Forbidden(
            f"{self.id} may not {verb.value} in namespace {namespace!r}: {self.describe()}",
            missing=verb.value,
            namespace=namespace,
            **extra,
        )

    def describe(self) -> str:
        """What it may do, for error messages."""
        return "its permissions come from the cluster's RBAC"


class KeyCaller(Caller):
    """An API key: `namespaces` None = every namespace the API serves."""

    def __init__(
        self, id: str, namespaces: frozenset[str] | None = None, verbs: frozenset[Verb] = ALL_VERBS
    ) -> None:
        self.id = id
        self.namespaces = namespaces
        self.verbs = verbs
        self._unrestricted = namespaces is None and verbs == ALL_VERBS

    @property
    def unrestricted(self) -> bool:
        return self._unrestricted

    def allows(self, verb: Verb, namespace: str) -> bool:
        return verb in self.verbs and (self.namespaces is None or namespace in self.namespaces)

    async def may(self, verb: Verb, namespace: str) -> bool:
        return self.allows(verb, namespace)

    async def sees(self, namespace: str) -> bool:
        return bool(self.verbs) and (self.namespaces is None or namespace in self.namespaces)

    def describe(self) -> str:
        where = "every namespace" if self.namespaces is None else ", ".join(sorted(self.namespaces))
        verbs = ", ".join(v.value for v in Verb if v in self.verbs) or "nothing"
        return f"the key may {verbs} in {where}"
