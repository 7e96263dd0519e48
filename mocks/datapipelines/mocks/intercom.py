"""Mock of the Intercom REST API 2.x (``https://api.intercom.io``), following
developers.intercom.com (contacts, companies incl. scroll, conversations, tickets search, admins,
teams, tags, pagination, search, errors and rate limiting) as summarised in shared/SOURCES.md
section 3.

Credentials: ``Authorization: Bearer intercom-token``; anything else answers 401
``{"type":"error.list","request_id":...,"errors":[{"code":"unauthorized","message":"Access Token
Invalid"}]}``. ``Intercom-Version`` is optional (the app's default, 2.14); a version Intercom does
not know answers 400 ``intercom_version_invalid``. The versions seen are kept in ``versions``.

Endpoints: ``GET /me``, ``/admins``, ``/admins/{id}``, ``/teams``, ``/tags``; ``GET /contacts``
and ``/conversations`` (cursor: ``per_page`` + ``starting_after``, next cursor in
``pages.next.starting_after``, no ``next`` on the last page; contacts default 50, conversations 20,
max 150); ``POST /contacts/search``, ``/conversations/search``, ``/tickets/search`` (``query`` with
``field``/``operator``/``value`` or nested AND/OR, ``pagination.per_page``/``starting_after``,
``sort``); ``GET /contacts/{id}``, ``/conversations/{id}`` (with ``conversation_parts``),
``/tickets/{id}``; ``GET /companies`` or ``POST /companies/list`` (``page``/``per_page``, default
15, max 60) and ``GET /companies/scroll`` (``scroll_param``; one open scroll per app, idle for 60 s
it expires; an empty ``data`` ends it).

Every response carries ``X-RateLimit-Limit``/``-Remaining``/``-Reset``; a 429 is
``rate_limit_exceeded`` with ``X-RateLimit-Remaining: 0`` (and ``Retry-After`` when injected).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])
TOKEN = "intercom-token"
BASE = 1704067200  # 2024-01-01T00:00:00Z
VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", "Unstable", *(f"2.{n}" for n in range(18))}
LIMIT_PER_MINUTE = 10000
CODES = {400: "parameter_invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         422: "unprocessable_entity", 500: "server_error", 503: "service_unavailable"}  # fmt: skip
OPERATORS = {"=", "!=", "IN", "NIN", ">", "<", "~", "!~", "^", "$"}
Row = dict[str, Any]


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods."""
    return cast(Callable[[_H], _H], _route(method, pattern))


def encode(offset: int) -> str:
    """An opaque cursor like Intercom's (base64 of a JSON array)."""
    return base64.b64encode(json.dumps([offset]).encode()).decode()


def decode(cursor: str) -> int:
    value = json.loads(base64.b64decode(cursor.encode(), validate=True))
    if not (isinstance(value, list) and value and isinstance(value[0], int)):
        raise ValueError(cursor)
    return int(value[0])


def hexid(kind: int, i: int) -> str:
    return f"65a0{kind:04x}{i:016x}"


def dig(row: Row, field: str) -> Any:
    value: Any = row
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check(query: Any) -> None:
    """Raise ValueError if ``query`` is not a search query Intercom accepts."""
    if not isinstance(query, dict):
        raise ValueError("query must be an object")
    if query.get("operator") in ("AND", "OR"):
        for part in query.get("value") or []:
            check(part)
    elif query.get("operator") not in OPERATORS or not query.get("field"):
        raise ValueError(f"unsupported query: {json.dumps(query)}")


def matches(row: Row, query: Row) -> bool:
    op = query["operator"]
    if op in ("AND", "OR"):
        results = (matches(row, part) for part in query.get("value") or [])
        return all(results) if op == "AND" else any(results)
    actual, value = dig(row, query["field"]), query.get("value")
    if (
        isinstance(actual, int)
        and not isinstance(actual, bool)
        and str(value).lstrip("-").isdigit()
    ):
        value = int(str(value))
    if op in ("IN", "NIN"):
        return (actual in (value or [])) == (op == "IN")
    if op in (">", "<"):
        return actual is not None and (actual > value if op == ">" else actual < value)
    if op in ("=", "!="):
        return (actual == value) == (op == "=")
    text, needle = str(actual or "").lower(), str(value or "").lower()
    hit = {"~": needle in text, "!~": needle not in text, "^": text.startswith(needle)}
    return hit.get(op, text.endswith(needle))


class IntercomApi(MockApi):
    vendor = "intercom"

    def __init__(self, rows: int = 50) -> None:
        super().__init__()
        self._ids = 0
        self.versions: list[str] = []
        self._scroll: Row | None = None
        self._scrolls = 0
        self.clock = BASE + (rows + 24) * 3600  # "now": later than every generated row
        self.admins: list[Row] = [
            {"type": "admin", "id": str(1000 + k), "name": f"Admin {k}",
             "email": f"admin{k}@example.com", "job_title": "Support", "away_mode_enabled": False,
             "away_mode_reassign": False, "has_inbox_seat": True, "team_ids": [str(200 + k % 2)],
             "avatar": {"type": "avatar", "image_url": None}}
            for k in range(3 + rows // 50)
        ]  # fmt: skip
        self.teams: list[Row] = [
            {"type": "team", "id": str(200 + k), "name": ("Support", "Sales")[k],
             "admin_ids": [a["id"] for a in self.admins if a["team_ids"] == [str(200 + k)]],
             "admin_priority_level": None}
            for k in range(2)
        ]  # fmt: skip
        self.tags: list[Row] = [
            {"type": "tag", "id": str(300 + k), "name": name, "applied_at": None,
             "applied_by": None}
            for k, name in enumerate(("vip", "trial", "churn-risk", "beta"))
        ]  # fmt: skip
        self.companies = [self._company(i) for i in range(max(1, rows // 5))]
        self.contacts = [self._contact(i) for i in range(rows)]
        self.conversations = [self._conversation(j) for j in range(max(1, rows // 2))]
        self.tickets = [self._ticket(t) for t in range(max(1, rows // 10))]

    # ------------------------------------------------------------------ dataset

    def _company(self, i: int) -> Row:
        at = BASE + i * 3600
        return {
            "type": "company", "id": hexid(1, i), "company_id": f"company-{i}", "app_id": "mockapp",
            "name": f"Company {i}", "created_at": at, "updated_at": at + 1800,
            "remote_created_at": at,
            "last_request_at": at, "monthly_spend": 100 * i, "session_count": i, "user_count": 5,
            "size": 10 + i, "website": f"https://company{i}.example.com", "industry": "Software",
            "plan": {}, "custom_attributes": {"tier": ("gold", "silver")[i % 2]},
            "tags": {"type": "tag.list", "tags": []},
            "segments": {"type": "segment.list", "segments": []},
        }  # fmt: skip

    def _contact(self, i: int) -> Row:
        at, cid = BASE + i * 3600, hexid(2, i)
        company, tag = self.companies[i % len(self.companies)], self.tags[i % len(self.tags)]
        listed = lambda data, url: {"type": "list", "data": data, "url": url,  # noqa: E731
                                    "total_count": len(data), "has_more": False}  # fmt: skip
        return {
            "type": "contact", "id": cid, "workspace_id": "mockapp", "external_id": f"user-{i}",
            "role": "lead" if i % 4 == 3 else "user", "email": f"contact{i}@example.com",
            "phone": None, "name": f"Contact {i}", "avatar": None,
            "owner_id": int(self.admins[i % len(self.admins)]["id"]),
            "social_profiles": {"type": "list", "data": []}, "has_hard_bounced": False,
            "marked_email_as_spam": False, "unsubscribed_from_emails": False,
            "created_at": at, "updated_at": at + 1800, "signed_up_at": at, "last_seen_at": at + 600,
            "last_replied_at": None, "last_contacted_at": None, "last_email_opened_at": None,
            "last_email_clicked_at": None, "language_override": None, "browser": None,
            "os": None, "location": {"type": "location", "country": "Portugal", "region": None,
                                     "city": "Lisbon"},
            "custom_attributes": {"plan": ("free", "pro")[i % 2]},
            "tags": listed([{"type": "tag", "id": tag["id"], "url": f"/tags/{tag['id']}"}],
                           f"/contacts/{cid}/tags"),
            "notes": listed([], f"/contacts/{cid}/notes"),
            "companies": listed([{"type": "company", "id": company["id"],
                                  "url": f"/companies/{company['id']}"}],
                                f"/contacts/{cid}/companies"),
        }  # fmt: skip

    def _part(self, conv: Row, k: int, at: int) -> Row:
        admin = self.admins[k % len(self.admins)]
        by_admin = k % 2 == 0
        mine = {"id": admin["id"], "type": "admin", "name": admin["name"], "email": admin["email"]}
        author = mine if by_admin else {**conv["source"]["author"]}
        return {
            "type": "conversation_part", "id": str(int(conv["id"]) * 100 + k),
            "part_type": "comment" if k % 3 else "assignment", "body": f"<p>Reply {k}</p>",
            "created_at": at, "updated_at": at, "notified_at": at,
            "assigned_to": {"type": "admin", "id": admin["id"]} if k % 3 == 0 else None,
            "author": author, "attachments": [], "external_id": None, "redacted": False,
        }  # fmt: skip

    def _conversation(self, j: int) -> Row:
        at, contact = BASE + j * 3600 + 900, self.contacts[j % len(self.contacts)]
        author = {"type": "user" if contact["role"] == "user" else "lead", "id": contact["id"],
                  "name": contact["name"], "email": contact["email"]}  # fmt: skip
        conv: Row = {
            "type": "conversation", "id": str(10000 + j), "title": None, "created_at": at,
            "updated_at": at, "waiting_since": None, "snoozed_until": None, "open": j % 3 != 2,
            "state": "closed" if j % 3 == 2 else "open", "read": True, "priority": "not_priority",
            "admin_assignee_id": int(self.admins[j % len(self.admins)]["id"]),
            "team_assignee_id": self.teams[j % 2]["id"], "tags": {"type": "tag.list", "tags": []},
            "conversation_rating": None, "statistics": None, "sla_applied": None,
            "source": {"type": "conversation", "id": str(90000 + j), "subject": "",
                       "delivered_as": "customer_initiated", "body": f"<p>Question {j}</p>",
                       "author": author, "attachments": [], "url": None, "redacted": False},
            "contacts": {"type": "contact.list",
                         "contacts": [{"type": "contact", "id": contact["id"],
                                       "external_id": contact["external_id"]}]},
            "teammates": {"type": "admin.list", "admins": []}, "parts": [],
        }  # fmt: skip
        for k in range(1 + j % 3):
            conv["parts"].append(self._part(conv, k, at + 60 * (k + 1)))
        conv["updated_at"] = conv["parts"][-1]["updated_at"]
        return conv

    def _ticket(self, t: int) -> Row:
        at, contact = BASE + t * 3600 + 1200, self.contacts[t % len(self.contacts)]
        return {
            "type": "ticket", "id": str(70000 + t), "ticket_id": str(t + 1), "category": "Customer",
            "ticket_attributes": {"_default_title_": f"Ticket {t}",
                                  "_default_description_": f"Broken {t}"},
            "ticket_state": ("submitted", "in_progress", "resolved")[t % 3],
            "ticket_type": {"type": "ticket_type", "id": "1", "name": "Bug"},
            "contacts": {"type": "contact.list",
                         "contacts": [{"type": "contact", "id": contact["id"]}]},
            "admin_assignee_id": "0", "team_assignee_id": "0", "created_at": at, "updated_at": at,
            "open": t % 3 != 2, "snoozed_until": None, "is_shared": True,
            "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
        }  # fmt: skip

    def touch(self, n: int, stream: str = "contacts") -> list[str]:
        """Update ``n`` records of ``stream`` (contacts, companies, conversations or tickets;
        spread over it) at a later ``updated_at``; a conversation also gets a new admin reply.
        Returns their ids."""
        with self.lock:
            self.clock += 3600
            rows: list[Row] = getattr(self, stream)
            n = min(n, len(rows))
            chosen = [rows[k * len(rows) // n] for k in range(n)]
            for step, row in enumerate(chosen):
                row["updated_at"] = self.clock + step
                if stream == "conversations":
                    row["parts"].append(self._part(row, len(row["parts"]) * 2, row["updated_at"]))
            return [r["id"] for r in chosen]

    def expected_counts(self) -> dict[str, int]:
        """Rows a full sync of the default streams loads (parts: those of every conversation)."""
        parts = sum(len(c["parts"]) for c in self.conversations)
        return {"contacts": len(self.contacts), "companies": len(self.companies),
                "conversations": len(self.conversations), "conversation_parts": parts,
                "tickets": len(self.tickets)}  # fmt: skip

    # ------------------------------------------------------------------ vendor shapes

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._scroll = None
            self.versions.clear()

    def _errors(self, status: int, code: str, message: str) -> Response:
        with self.lock:
            self._ids += 1
            request_id = f"000mock{self._ids:012d}"
        body = {"type": "error.list", "request_id": request_id,
                "errors": [{"code": code, "message": message}]}  # fmt: skip
        return Response(status, body)

    def error(self, status: int, message: str) -> Response:
        if status == 404 and message.startswith("no route"):
            message = "Resource Not Found"
        return self._errors(status, CODES.get(status, "client_error"), message)

    def rate_limited(self, retry_after: float | None) -> Response:
        limit = LIMIT_PER_MINUTE // 6
        response = self._errors(
            429, "rate_limit_exceeded", f"Exceeded rate limit of {limit} in 10_seconds"
        )
        response.headers["X-RateLimit-Remaining"] = "0"
        if retry_after is not None:
            response.headers["Retry-After"] = f"{retry_after:g}"
        return response

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if not request.path.startswith("/__mock__/"):
            window = (int(time.time()) // 10 + 1) * 10
            used = self.stats.count() % (LIMIT_PER_MINUTE // 6)
            response.headers.setdefault("X-RateLimit-Remaining", str(LIMIT_PER_MINUTE // 6 - used))
            response.headers.update(
                {"X-RateLimit-Limit": str(LIMIT_PER_MINUTE), "X-RateLimit-Reset": str(window)}
            )
        return response

    def authorize(self, request: Request) -> Response | None:
        if request.bearer != TOKEN:
            return self._errors(401, "unauthorized", "Access Token Invalid")
        version = request.headers.get("intercom-version")
        if version is not None and version not in VERSIONS:
            return self._errors(
                400, "intercom_version_invalid", "The requested version could not be found"
            )
        with self.lock:
            self.versions.append(version or "2.14")
        return None

    def _cursor_page(
        self, rows: list[Row], per_page: int, after: str | None
    ) -> tuple[list[Row], Row]:
        start = decode(after) if after else 0  # ValueError/binascii.Error: a 400 for the caller
        per_page = max(1, min(per_page, 150))
        pages: Row = {"type": "pages", "page": start // per_page + 1, "per_page": per_page,
                      "total_pages": max(1, -(-len(rows) // per_page))}  # fmt: skip
        if start + per_page < len(rows):
            pages["next"] = {"page": pages["page"] + 1, "starting_after": encode(start + per_page)}
        return rows[start : start + per_page], pages

    def _listing(
        self, request: Request, rows: list[Row], key: str, kind: str, default: int
    ) -> Response:
        try:
            chunk, pages = self._cursor_page(
                rows, request.int_arg("per_page", default), request.arg("starting_after")
            )
        except (ValueError, binascii.Error):
            return self.error(400, "starting_after is invalid")
        return Response(200, {"type": kind, key: chunk, "total_count": len(rows), "pages": pages})

    def _search(
        self, request: Request, rows: list[Row], key: str, kind: str, default: int
    ) -> Response:
        body = request.json() or {}
        try:
            check(body.get("query"))
            found = [r for r in rows if matches(r, body["query"])]
            sort = body.get("sort") or {}
            if sort.get("field"):
                field = str(sort["field"])
                found.sort(key=lambda r: (dig(r, field) is None, dig(r, field) or 0),
                           reverse=sort.get("order") == "descending")  # fmt: skip
            paging = body.get("pagination") or {}
            chunk, pages = self._cursor_page(
                found, int(paging.get("per_page", default)), paging.get("starting_after")
            )
        except (ValueError, TypeError, binascii.Error) as exc:
            return self.error(400, str(exc) or "invalid search")
        return Response(200, {"type": kind, key: chunk, "total_count": len(found), "pages": pages})

    def _one(self, rows: list[Row], ref: str, label: str) -> Response:
        found = next((r for r in rows if r["id"] == ref), None)
        return Response(200, found) if found is not None else self.error(404, f"{label} Not Found")

    # ------------------------------------------------------------------ routes

    @route("GET", "/me")
    def me(self, request: Request) -> Response:
        app = {
            "type": "app",
            "id_code": "mockapp",
            "name": "Mock App",
            "region": "US",
            "timezone": "UTC",
        }
        return Response(200, {**self.admins[0], "email_verified": True, "app": app})

    @route("GET", "/admins")
    def admins_list(self, request: Request) -> Response:
        return Response(200, {"type": "admin.list", "admins": self.admins})

    @route("GET", "/admins/{id}")
    def admin(self, request: Request) -> Response:
        return self._one(self.admins, request.params["id"], "Admin")

    @route("GET", "/teams")
    def teams_list(self, request: Request) -> Response:
        return Response(200, {"type": "team.list", "teams": self.teams})

    @route("GET", "/tags")
    def tags_list(self, request: Request) -> Response:
        return Response(200, {"type": "list", "data": self.tags})

    @route("GET", "/contacts")
    def contacts_list(self, request: Request) -> Response:
        return self._listing(request, self.contacts, "data", "list", 50)

    @route("POST", "/contacts/search")
    def contacts_search(self, request: Request) -> Response:
        return self._search(request, self.contacts, "data", "list", 50)

    @route("GET", "/contacts/{id}")
    def contact(self, request: Request) -> Response:
        return self._one(self.contacts, request.params["id"], "User")

    @route("GET", "/companies/scroll")
    def companies_scroll(self, request: Request) -> Response:
        param, now = request.arg("scroll_param"), time.monotonic()
        with self.lock:
            if self._scroll is not None and now - self._scroll["used"] > 60:
                self._scroll = None  # idle for a minute: expired
            if not param:
                if self._scroll is not None:
                    return self._errors(
                        400, "scroll_exists", "scroll already exists for this workspace"
                    )
                self._scrolls += 1
                self._scroll = {"n": self._scrolls, "offset": 0, "param": ""}
            elif self._scroll is None or self._scroll["param"] != param:
                return self._errors(404, "not_found", "scroll parameter not found")
            start = self._scroll["offset"]
            chunk = self.companies[start : start + 50]
            end = start + len(chunk)
            self._scroll.update(offset=end, used=now, param=f"scroll-{self._scroll['n']}-{end}")
            body = {"type": "list", "data": chunk, "pages": None, "total_count": None,
                    "scroll_param": self._scroll["param"]}  # fmt: skip
            if not chunk:
                self._scroll = None  # the end of the scroll expires it
        return Response(200, body)

    @route("GET", "/companies")
    def companies_list(self, request: Request) -> Response:
        page = max(1, request.int_arg("page", 1))
        size = max(1, min(request.int_arg("per_page", 15), 60))
        last = max(1, -(-len(self.companies) // size))
        more = f"{self.url}/companies?page={page + 1}&per_page={size}" if page < last else None
        pages = {"type": "pages", "next": more, "page": page, "per_page": size, "total_pages": last}
        chunk = self.companies[(page - 1) * size : page * size]
        body = {"type": "list", "data": chunk, "total_count": len(self.companies), "pages": pages}
        return Response(200, body)

    @route("POST", "/companies/list")
    def companies_list_post(self, request: Request) -> Response:
        return self.companies_list(request)

    @route("GET", "/companies/{id}")
    def company(self, request: Request) -> Response:
        return self._one(self.companies, request.params["id"], "Company")

    def _conversation_out(self, conv: Row, parts: bool) -> Row:
        out = {k: v for k, v in conv.items() if k != "parts"}
        if parts:
            out["conversation_parts"] = {"type": "conversation_part.list",
                                         "conversation_parts": conv["parts"][:500],
                                         "total_count": len(conv["parts"])}  # fmt: skip
        return out

    @route("GET", "/conversations")
    def conversations_list(self, request: Request) -> Response:
        rows = [self._conversation_out(c, False) for c in self.conversations]
        return self._listing(request, rows, "conversations", "conversation.list", 20)

    @route("POST", "/conversations/search")
    def conversations_search(self, request: Request) -> Response:
        rows = [self._conversation_out(c, False) for c in self.conversations]
        return self._search(request, rows, "conversations", "conversation.list", 20)

    @route("GET", "/conversations/{id}")
    def conversation(self, request: Request) -> Response:
        rows = [self._conversation_out(c, True) for c in self.conversations]
        return self._one(rows, request.params["id"], "Conversation")

    @route("POST", "/tickets/search")
    def tickets_search(self, request: Request) -> Response:
        return self._search(request, self.tickets, "tickets", "ticket.list", 20)

    @route("GET", "/tickets/{id}")
    def ticket(self, request: Request) -> Response:
        return self._one(self.tickets, request.params["id"], "Ticket")
