"""Mock of the PandaDoc public API v1 (``https://api.pandadoc.com``), following PandaDoc's
OpenAPI specification (github.com/PandaDoc/pandadoc-openapi-specification) as summarised in
shared/SOURCES.md section 5.

Credentials: ``Authorization: API-Key pandadoc-key`` (a missing or wrong key answers 401
``{"type":"authentication_error","detail":...}``).

Endpoints:
- ``GET /public/v1/documents``: ``{"results": [...]}``, ``count`` (default 50, 1..100) and
  ``page`` (from 1); no total and no token, an empty ``results`` is the end. Filters
  ``modified_from`` (>=), ``modified_to`` (<), ``created_from/_to``, ``completed_from/_to``,
  ``status``/``status__ne`` (0..13), ``q``, ``tag``, ``template_id``, ``deleted``; ``order_by``
  (default ``date_status_changed``, ``-`` for descending).
- ``GET /public/v1/documents/{id}/details``: recipients, tokens, fields, pricing, ...
- ``GET /public/v1/templates`` (``count``/``page``, ``q``, ``tag``, ``deleted``) and
  ``GET /public/v1/contacts`` (one unpaged ``{"results": [...]}``, ``email`` filter).

Errors are ``{"type": ..., "detail": ...}``; 429 is ``{"type":"throttled",...}`` with
``Retry-After`` when the injected fault gives one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods (its Handler takes a plain MockApi)."""
    return cast(Callable[[_H], _H], _route(method, pattern))


API_KEY = "pandadoc-key"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_STREAMS = ("documents", "recipients", "tokens")
ORDER_FIELDS = {
    "name", "status", "date_created", "date_modified", "date_sent", "date_completed",
    "date_expiration", "date_declined", "date_of_last_action", "date_status_changed",
}  # fmt: skip
#: the documented numeric status codes of the ``status`` filter
STATUSES = [
    "document.draft", "document.sent", "document.completed", "document.uploaded",
    "document.error", "document.viewed", "document.waiting_approval", "document.approved",
    "document.rejected", "document.waiting_pay", "document.paid", "document.voided",
    "document.declined", "document.external_review",
]  # fmt: skip
_CYCLE = [0, 1, 5, 2, 2, 12, 11]  # the statuses the generated documents go through
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def pd_id(kind: str, i: int) -> str:
    """A 22-character PandaDoc-looking id, stable for (kind, i)."""
    digest = int.from_bytes(hashlib.sha256(f"{kind}-{i}".encode()).digest(), "big")
    chars = []
    for _ in range(22):
        digest, rest = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[rest])
    return "".join(chars)


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """ISO 8601 with ``Z`` or an offset, or a bare date (UTC)."""
    text = value.strip().replace("Z", "+00:00").replace(" ", "+")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class PandaDocApi(MockApi):
    vendor = "pandadoc"

    def __init__(self, rows: int = 50, *, templates: int | None = None) -> None:
        super().__init__()
        self.rows = rows
        self.clock = BASE + timedelta(hours=rows)  # "now": after every generated record
        self.contacts = [self._contact(i) for i in range(max(3, rows // 2))]
        self.templates = [self._template(i) for i in range(templates or max(1, rows // 10))]
        self.documents = [self._document(i) for i in range(rows)]

    # ------------------------------------------------------------------ dataset

    def _contact(self, i: int) -> dict[str, Any]:
        return {
            "id": pd_id("contact", i),
            "email": f"contact{i}@example.com",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "company": f"Company {i % 7}",
            "job_title": "Buyer",
            "phone": f"+1555{i:07d}",
            "country": "USA",
            "state": "Texas",
            "street_address": f"{i} Elm Street",
            "city": "Austin",
            "postal_code": f"{75000 + i}",
        }

    def _template(self, i: int) -> dict[str, Any]:
        ts = iso(BASE + timedelta(minutes=i))
        return {
            "id": pd_id("template", i),
            "name": f"Template {i}",
            "date_created": ts,
            "date_modified": ts,
            "version": "2",
            "tags": ["sales" if i % 2 else "onboarding"],
            "deleted": False,
        }

    def _document(self, i: int) -> dict[str, Any]:
        """The stored document: details fields plus ``_``-prefixed internals."""
        created = BASE + timedelta(hours=i)
        status = STATUSES[_CYCLE[i % len(_CYCLE)]]
        template = self.templates[i % len(self.templates)]
        recipients = [self._recipient(i, k, status) for k in range(1 + i % 3)]
        items = [
            {"id": pd_id(f"item-{i}", k), "sku": f"SKU-{k}", "name": f"Item {k}", "qty": 1 + k,
             "price": f"{10 * (k + 1)}.00", "cost": "0.00",
             "subtotal": f"{10 * (k + 1) * (1 + k)}.00",
             "discount": {"type": "absolute", "value": "0"}}
            for k in range(1 + i % 2)
        ]  # fmt: skip
        total = sum(10 * (k + 1) * (1 + k) for k in range(len(items)))
        return {
            "id": pd_id("document", i),
            "name": f"Proposal {i}",
            "status": status,
            "date_created": created,
            "date_modified": created,
            "date_sent": None if status == "document.draft" else created,
            "date_completed": created if status == "document.completed" else None,
            "content_date_modified": created,
            "expiration_date": created + timedelta(days=60),
            "ref_number": f"REF-{i:06d}",
            "version": "2",
            "created_by": {"id": pd_id("user", 0), "email": "owner@example.com",
                           "first_name": "Panda", "last_name": "Doc", "avatar": None,
                           "membership_id": pd_id("membership", 0)},
            "template": {"id": template["id"], "name": template["name"]},
            "metadata": {"opp_id": str(1000 + i)},
            "tokens": [{"name": "Client.Company", "value": f"Company {i % 7}"},
                       {"name": "Document.Index", "value": str(i)}][: 1 + i % 2],
            "fields": [{"uuid": pd_id(f"field-{i}", k), "name": f"Field{k}", "title": "",
                        "placeholder": f"Field {k}", "value": f"value {k}",
                        "assigned_to": recipients[k % len(recipients)],
                        "field_id": f"text{k}", "type": "text"} for k in range(1 + i % 2)],
            "pricing": {"tables": [{"id": pd_id(f"table-{i}", 0), "name": "Pricing Table 1",
                                    "currency": "USD", "is_included_in_total": True,
                                    "summary": {"subtotal": f"{total}.00", "total": f"{total}.00",
                                                "discount": "0.00", "tax": "0.00"},
                                    "items": items, "total": f"{total}.00"}],
                        "quotes": [], "total": f"{total}.00"},
            "tags": ["renewal" if i % 2 else "new"],
            "grand_total": {"amount": f"{total}.00", "currency": "USD"},
            "recipients": recipients,
            "sent_by": None,
            "linked_objects": [],
            "approval_execution": None,
            "_status_changed": created,
            "_deleted": False,
        }  # fmt: skip

    def _recipient(self, i: int, k: int, status: str) -> dict[str, Any]:
        contact = self.contacts[(i + k) % len(self.contacts)]
        done = status == "document.completed"
        return {
            "id": pd_id(f"recipient-{i}", k),
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "email": contact["email"],
            "phone": "",
            "recipient_type": "signer" if k == 0 else "cc",
            "has_completed": done,
            "role": "Client" if k == 0 else "",
            "roles": ["Client"] if k == 0 else [],
            "signing_order": None,
            "contact_id": contact["id"],
            "shared_link": f"https://app.pandadoc.com/document/{pd_id(f'link-{i}', k)}",
            "signature_date": iso(BASE + timedelta(hours=i)) if done and k == 0 else None,
            "type": "recipient",
        }

    # ------------------------------------------------------------------ test controls

    def touch(self, n: int) -> list[str]:
        """Modify the first ``n`` documents one day after anything else; their ids."""
        with self.lock:
            self.clock += timedelta(days=1)
            for doc in self.documents[:n]:
                doc["date_modified"] = doc["content_date_modified"] = self.clock
                doc["_status_changed"] = self.clock
                doc["version"] = str(int(doc["version"]) + 1)
                doc["tokens"] = [*doc["tokens"][:1], {"name": "Touched", "value": iso(self.clock)}]
            return [doc["id"] for doc in self.documents[:n]]

    def expected_counts(self, streams: Iterable[str] = DEFAULT_STREAMS) -> dict[str, int]:
        """Rows a full sync loads per stream (default: the connector's default streams;
        also ``templates``, ``contacts``, ``fields``)."""
        live = [d for d in self.documents if not d["_deleted"]]
        counts = {
            "documents": len(live),
            "recipients": sum(len(d["recipients"]) for d in live),
            "tokens": sum(len(d["tokens"]) for d in live),
            "fields": sum(len(d["fields"]) for d in live),
            "templates": len(self.templates),
            "contacts": len(self.contacts),
        }
        return {name: counts[name] for name in streams}

    # ------------------------------------------------------------------ vendor shapes

    def authorize(self, request: Request) -> Response | None:
        if request.headers.get("authorization", "").strip() == f"API-Key {API_KEY}":
            return None
        return Response(
            401,
            {
                "type": "authentication_error",
                "detail": "Authentication credentials were not provided.",
            },
        )

    def error(self, status: int, message: str) -> Response:
        kinds = {
            401: ("authentication_error", "Authentication credentials were not provided."),
            403: ("permission_error", "You do not have permission to perform this action."),
            404: ("request_error", "Not found"),
            429: ("throttled", "Request was throttled."),
        }
        kind, detail = kinds.get(
            status, ("request_error" if status < 500 else "server_error", message)
        )
        return Response(status, {"type": kind, "detail": detail})

    # ------------------------------------------------------------------ routes

    @route("GET", "/public/v1/documents")
    def list_documents(self, request: Request) -> Response:
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        order = request.arg("order_by") or "date_status_changed"
        if order.lstrip("-") not in ORDER_FIELDS:
            return self._bad(f'"{order}" is not a valid choice.', "order_by")
        for param in ("status", "status__ne"):
            if (request.arg(param) or "0") not in {str(n) for n in range(len(STATUSES))}:
                return self._bad("Select a valid choice.", param)
        try:
            docs = self._filter(request)
        except ValueError as exc:
            return self._bad("Enter a valid date/time.", str(exc))
        key = order.lstrip("-")
        docs.sort(key=lambda d: (self._sort_value(d, key), d["id"]), reverse=order.startswith("-"))
        count, page = paging
        return Response(
            200, {"results": [self._summary(d) for d in docs[(page - 1) * count :][:count]]}
        )

    @route("GET", "/public/v1/documents/{id}/details")
    def document_details(self, request: Request) -> Response:
        with self.lock:
            doc = next((d for d in self.documents if d["id"] == request.params["id"]), None)
            if doc is None:
                return self.error(404, "Not found")
            return Response(200, self._public(doc))

    @route("GET", "/public/v1/templates")
    def list_templates(self, request: Request) -> Response:
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        count, page = paging
        q, tag = (request.arg("q") or "").lower(), request.arg("tag")
        deleted = (request.arg("deleted") or "false").lower() == "true"
        rows = [
            {k: v for k, v in t.items() if k not in ("tags", "deleted")}
            for t in self.templates
            if q in t["name"].lower()
            and (tag is None or tag in t["tags"])
            and t["deleted"] == deleted
        ]
        return Response(200, {"results": rows[(page - 1) * count :][:count]})

    @route("GET", "/public/v1/contacts")
    def list_contacts(self, request: Request) -> Response:
        email = request.arg("email")
        return Response(200, {"results": [c for c in self.contacts if email in (None, c["email"])]})

    # ------------------------------------------------------------------ helpers

    def _bad(self, message: str, param: str) -> Response:
        return Response(400, {"type": "request_error", "detail": {param: [message]}})

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        count, page = request.int_arg("count", 50), request.int_arg("page", 1)
        if not 1 <= count <= 100:
            return self._bad("Ensure this value is between 1 and 100.", "count")
        if page < 1:
            return self._bad("Ensure this value is greater than or equal to 1.", "page")
        return count, page

    def _filter(self, request: Request) -> list[dict[str, Any]]:
        bounds: list[tuple[str, str, bool]] = []  # (field, param, lower bound)
        for field, name in (("date_modified", "modified"), ("date_created", "created"),
                            ("date_completed", "completed")):  # fmt: skip
            bounds += [(field, f"{name}_from", True), (field, f"{name}_to", False)]
        limits: list[tuple[str, datetime, bool]] = []
        for field, param, lower in bounds:
            value = request.arg(param)
            if value:
                try:
                    limits.append((field, parse_time(value), lower))
                except ValueError:
                    raise ValueError(param) from None
        status, status_ne = request.arg("status"), request.arg("status__ne")
        q, tag, template = (
            (request.arg("q") or "").lower(),
            request.arg("tag"),
            request.arg("template_id"),
        )
        deleted = (request.arg("deleted") or "false").lower() == "true"
        out = []
        with self.lock:
            for doc in self.documents:
                if doc["_deleted"] != deleted or q not in doc["name"].lower():
                    continue
                if status is not None and doc["status"] != STATUSES[int(status)]:
                    continue
                if status_ne is not None and doc["status"] == STATUSES[int(status_ne)]:
                    continue
                if (tag and tag not in doc["tags"]) or (
                    template and doc["template"]["id"] != template
                ):
                    continue
                if all(
                    doc[f] is not None and (doc[f] >= at if lower else doc[f] < at)
                    for f, at, lower in limits
                ):
                    out.append(doc)
        return out

    @staticmethod
    def _sort_value(doc: dict[str, Any], key: str) -> str:
        aliases = {
            "date_status_changed": "_status_changed",
            "date_expiration": "expiration_date",
            "date_of_last_action": "date_modified",
            "date_declined": "date_modified",
        }
        field = aliases.get(key, key)
        value = doc[field]
        if isinstance(value, datetime) or value is None:
            return iso(value) or ""
        return str(value)

    @staticmethod
    def _summary(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "name": doc["name"],
            "status": doc["status"],
            "date_created": iso(doc["date_created"]),
            "date_modified": iso(doc["date_modified"]),
            "expiration_date": iso(doc["expiration_date"]),
            "version": doc["version"],
        }

    @staticmethod
    def _public(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            k: iso(v) if isinstance(v, datetime) else v
            for k, v in doc.items()
            if not k.startswith("_")
        }
