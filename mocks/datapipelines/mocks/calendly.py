"""Mock of the Calendly API v2 (``https://api.calendly.com``), following developer.calendly.com
(users, organizations, memberships, event types, scheduled events and invitees, pagination, rate
limits) as summarised in shared/SOURCES.md section 4.

Credentials: ``Authorization: Bearer calendly-token``; anything else answers 401
``{"title":"Unauthenticated","message":"The access token is invalid"}``.

Endpoints: ``GET /users/me`` and ``/users/{uuid}`` and ``/organizations/{uuid}`` (one object in
``{"resource": ...}``); collections ``GET /organization_memberships`` (``organization`` or
``user``), ``/event_types`` (``organization`` or ``user``; ``active``), ``/scheduled_events``
(``organization``/``user``/``invitee_email``, ``status`` active|canceled, ``min_start_time``
inclusive, ``max_start_time`` exclusive, ``sort=start_time:asc|desc``),
``/scheduled_events/{uuid}/invitees`` (``status``, ``email``, ``sort=created_at:asc|desc``),
``/webhook_subscriptions`` and ``/routing_forms`` (empty); ``GET /event_types/{uuid}``,
``/scheduled_events/{uuid}``, ``/scheduled_events/{uuid}/invitees/{uuid}``. Canceled events embed
their ``cancellation``. There is no ``GET /users`` and no updated-since filter.

Pagination: ``count`` (default 20, 1..100, else 400) and ``page_token``; ``pagination`` holds
``count``, ``next_page`` (a full URL), ``next_page_token``, ``previous_page``,
``previous_page_token`` (null at the ends). Resource URIs point at this server (the dataset stores
``https://api.calendly.com/...`` and answers rewrite it), so a client may follow them as is.

Errors are ``{"title", "message"}`` (400 adds ``details: [{parameter, message}]``). Every answer
carries ``X-RateLimit-Limit: 500``, ``X-RateLimit-Remaining`` (0 on a 429) and
``X-RateLimit-Reset: 60``; ``Retry-After`` only when the injected fault gives one.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])
TOKEN = "calendly-token"
API = "https://api.calendly.com"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
TITLES = {400: "Invalid Argument", 401: "Unauthenticated", 403: "Permission Denied",
          404: "Resource Not Found", 429: "Too Many Requests",
          500: "Internal Server Error"}  # fmt: skip
MESSAGES = {401: "The access token is invalid",
            403: "You do not have permission to access this resource.",
            404: "The server could not find the requested resource."}  # fmt: skip
Row = dict[str, Any]


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods."""
    return cast(Callable[[_H], _H], _route(method, pattern))


def stamp(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uid(kind: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"calendly-mock/{kind}/{n}"))


def path_of(uri: str | None) -> str:
    """The path of a URI given either on api.calendly.com or on this server."""
    return urlsplit(uri or "").path.rstrip("/")


class BadArgument(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def when(request: Request, name: str) -> datetime | None:
    raw = request.arg(name)
    if raw is None:
        return None
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadArgument(name, "must be a valid ISO 8601 date-time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class CalendlyApi(MockApi):
    vendor = "calendly"

    def __init__(self, rows: int = 50) -> None:
        super().__init__()
        self.org = f"{API}/organizations/{uid('org', 0)}"
        self.organization: Row = {"uri": self.org, "name": "Mock Org", "plan": "teams",
                                  "stage": "paid", "created_at": stamp(BASE),
                                  "updated_at": stamp(BASE)}  # fmt: skip
        self.users: list[Row] = []
        self.memberships: list[Row] = []
        self.event_types: list[Row] = []
        for u in range(1 + max(1, rows // 25)):
            user_uri, slug = f"{API}/users/{uid('user', u)}", f"user-{u}"
            user = {"uri": user_uri, "name": f"User {u}", "slug": slug,
                    "email": f"user{u}@example.com", "scheduling_url": f"https://calendly.com/{slug}",
                    "timezone": "Europe/Lisbon", "avatar_url": None, "created_at": stamp(BASE),
                    "updated_at": stamp(BASE), "current_organization": self.org,
                    "resource_type": "User", "locale": "en"}  # fmt: skip
            self.users.append(user)
            self.memberships.append(
                {"uri": f"{API}/organization_memberships/{uid('membership', u)}",
                 "role": "owner" if u == 0 else "user", "user": dict(user),
                 "organization": self.org,
                 "created_at": stamp(BASE), "updated_at": stamp(BASE)}
            )  # fmt: skip
            for k, minutes in enumerate((30, 60)):
                n = 2 * u + k
                self.event_types.append(
                    {"uri": f"{API}/event_types/{uid('event_type', n)}",
                     "name": f"{minutes} Minute Meeting",
                     "active": k == 0, "booking_method": "instant", "slug": f"{minutes}min",
                     "scheduling_url": f"https://calendly.com/{slug}/{minutes}min",
                     "duration": minutes, "kind": "solo", "pooling_type": None,
                     "type": "StandardEventType", "color": "#0069ff", "created_at": stamp(BASE),
                     "updated_at": stamp(BASE), "internal_note": None, "description_plain": None,
                     "description_html": None, "secret": False, "deleted_at": None,
                     "admin_managed": False, "custom_questions": [], "position": k,
                     "profile": {"type": "User", "name": user["name"], "owner": user_uri}}
                )  # fmt: skip
        self.me = self.users[0]
        self.events: list[Row] = []
        self.invitees: dict[str, list[Row]] = {}
        for i in range(rows):
            self._book(i, BASE + timedelta(hours=i))

    # ------------------------------------------------------------------ dataset

    def _book(self, i: int, start: datetime) -> Row:
        etype = self.event_types[(2 * i) % len(self.event_types)]
        host = next(u for u in self.users if u["uri"] == etype["profile"]["owner"])
        canceled = i % 7 == 6
        created = start - timedelta(days=7)
        uri = f"{API}/scheduled_events/{uid('event', i)}"
        cancellation = {"canceled_by": "Guest", "reason": "Conflict", "canceler_type": "invitee",
                        "created_at": stamp(created + timedelta(days=1))}  # fmt: skip
        guests: list[Row] = []
        for k in range(1 + (i % 3 == 0)):
            guests.append(
                {"uri": f"{uri}/invitees/{uid('invitee', i * 10 + k)}",
                 "email": f"guest{i}-{k}@example.com",
                 "name": f"Guest {i}-{k}", "first_name": None, "last_name": None,
                 "status": "canceled" if canceled else "active", "questions_and_answers": [],
                 "timezone": "Europe/Lisbon", "event": uri, "created_at": stamp(created),
                 "updated_at": stamp(created),
                 "tracking": {"utm_source": None, "utm_campaign": None},
                 "text_reminder_number": None, "rescheduled": False, "old_invitee": None,
                 "new_invitee": None, "cancel_url": f"https://calendly.com/cancellations/{i}-{k}",
                 "reschedule_url": f"https://calendly.com/reschedulings/{i}-{k}",
                 "routing_form_submission": None, "payment": None, "no_show": None,
                 "reconfirmation": None, "scheduling_method": None, "invitee_scheduled_by": None,
                 **({"cancellation": cancellation} if canceled else {})}
            )  # fmt: skip
        event: Row = {
            "uri": uri, "name": etype["name"], "meeting_notes_plain": None,
            "meeting_notes_html": None,
            "status": "canceled" if canceled else "active", "start_time": stamp(start),
            "end_time": stamp(start + timedelta(minutes=etype["duration"])),
            "event_type": etype["uri"],
            "location": {"type": "google_conference", "status": "pushed", "join_url": None},
            "invitees_counter": {"total": len(guests), "active": 0 if canceled else len(guests),
                                 "limit": len(guests)},
            "created_at": stamp(created), "updated_at": stamp(created), "event_guests": [],
            "event_memberships": [{"user": host["uri"], "user_email": host["email"],
                                   "user_name": host["name"]}],
            "calendar_event": {"kind": "google", "external_id": f"gcal-{i}"},
            **({"cancellation": cancellation} if canceled else {}),
        }  # fmt: skip
        self.events.append(event)
        self.invitees[path_of(uri)] = guests
        return event

    def touch(self, n: int) -> list[str]:
        """Book ``n`` new events (one or two invitees each) starting after every existing one --
        Calendly has no modified-since filter, so what an incremental sync picks up is new
        start times (``min_start_time``). Returns their URIs (on api.calendly.com)."""
        with self.lock:
            last = max(
                datetime.fromisoformat(e["start_time"].replace("Z", "+00:00")) for e in self.events
            )
            first = len(self.events)
            return [
                self._book(first + k, last + timedelta(days=1, hours=k))["uri"] for k in range(n)
            ]

    def expected_counts(self) -> dict[str, int]:
        """Rows a full sync loads: every event (active and canceled) and all their invitees;
        ``event_types`` deduplicated on ``uri``; one organization; a user per membership."""
        return {"organizations": 1, "organization_memberships": len(self.memberships),
                "users": len(self.users), "event_types": len(self.event_types),
                "scheduled_events": len(self.events),
                "scheduled_event_invitees": sum(map(len, self.invitees.values()))}  # fmt: skip

    # ------------------------------------------------------------------ vendor shapes

    def authorize(self, request: Request) -> Response | None:
        return None if request.bearer == TOKEN else self.error(401, "")

    def error(self, status: int, message: str) -> Response:
        text = MESSAGES.get(status) if status in MESSAGES else message
        return Response(status, {"title": TITLES.get(status, "Error"), "message": text})

    def rate_limited(self, retry_after: float | None) -> Response:
        response = self.error(429, "You have exceeded the rate limit. Please try again later.")
        response.headers["X-RateLimit-Remaining"] = "0"
        if retry_after is not None:
            response.headers["Retry-After"] = f"{retry_after:g}"
        return response

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if request.path.startswith("/__mock__/"):
            return response
        if self.url and isinstance(response.body, dict):
            response.body = json.loads(json.dumps(response.body).replace(API, self.url))
        remaining = str(max(0, 499 - self.stats.count() % 500))
        response.headers.setdefault("X-RateLimit-Remaining", remaining)
        response.headers.update({"X-RateLimit-Limit": "500", "X-RateLimit-Reset": "60"})
        return response

    def _bad(self, parameter: str, message: str) -> Response:
        body = {"title": "Invalid Argument", "message": "The supplied parameters are invalid.",
                "details": [{"parameter": parameter, "message": message}]}  # fmt: skip
        return Response(400, body)

    def _collection(self, request: Request, rows: list[Row]) -> Response:
        count = request.int_arg("count", 20)
        if not 1 <= count <= 100:
            return self._bad("count", "must be an integer between 1 and 100")
        token = request.arg("page_token")
        try:
            start = json.loads(base64.urlsafe_b64decode(token.encode()))["o"] if token else 0
        except (ValueError, KeyError, TypeError, binascii.Error):
            return self._bad("page_token", "is invalid")
        query = {k: v[-1] for k, v in request.query.items() if k != "page_token"}

        def link(offset: int) -> tuple[str | None, str | None]:
            if offset < 0 or offset >= len(rows) or offset == start:
                return None, None
            tok = base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()
            return f"{API}{request.path}?{urlencode({**query, 'page_token': tok})}", tok

        next_page, next_token = link(start + count)
        previous_page, previous_token = link(max(0, start - count)) if start else (None, None)
        page = rows[start : start + count]
        pagination = {"count": len(page), "next_page": next_page, "next_page_token": next_token,
                      "previous_page": previous_page,
                      "previous_page_token": previous_token}  # fmt: skip
        return Response(200, {"collection": page, "pagination": pagination})

    def _scope(self, request: Request, required: bool = True) -> Response | None:
        """The ``organization``/``user`` filter: a 400 if neither (when required), a 403 for an
        organization or user outside the token's."""
        org, user = request.arg("organization"), request.arg("user")
        if org is None and user is None and required:
            return self._bad("organization", "one of organization or user must be provided")
        if org is not None and path_of(org) != path_of(self.org):
            return self.error(403, "")
        if user is not None and path_of(user) not in {path_of(u["uri"]) for u in self.users}:
            return (
                self.error(403, "")
                if org is None
                else self._bad("user", "is not in this organization")
            )
        return None

    def _find(self, rows: list[Row], path: str) -> Response:
        for row in rows:
            if path_of(row["uri"]) == path:
                return Response(200, {"resource": row})
        return self.error(404, "")

    # ------------------------------------------------------------------ routes

    @route("GET", "/users/me")
    def users_me(self, request: Request) -> Response:
        return Response(200, {"resource": self.me})

    @route("GET", "/users/{uuid}")
    def user(self, request: Request) -> Response:
        return self._find(self.users, request.path)

    @route("GET", "/organizations/{uuid}")
    def organization_get(self, request: Request) -> Response:
        return self._find([self.organization], request.path)

    @route("GET", "/organization_memberships")
    def memberships_list(self, request: Request) -> Response:
        denied = self._scope(request)
        if denied is not None:
            return denied
        user, email = request.arg("user"), request.arg("email")
        rows = [m for m in self.memberships
                if (user is None or path_of(m["user"]["uri"]) == path_of(user))
                and (email is None or m["user"]["email"] == email)]  # fmt: skip
        return self._collection(request, rows)

    @route("GET", "/event_types")
    def event_types_list(self, request: Request) -> Response:
        denied = self._scope(request)
        if denied is not None:
            return denied
        user, active = request.arg("user"), request.arg("active")
        rows = [e for e in self.event_types
                if (user is None or path_of(e["profile"]["owner"]) == path_of(user))
                and (active is None or e["active"] == (active == "true"))]  # fmt: skip
        return self._collection(request, rows)

    @route("GET", "/event_types/{uuid}")
    def event_type(self, request: Request) -> Response:
        return self._find(self.event_types, request.path)

    @route("GET", "/scheduled_events")
    def events_list(self, request: Request) -> Response:
        denied = self._scope(request, required=False)
        if denied is not None:
            return denied
        status, sort = request.arg("status"), request.arg("sort", "start_time:asc")
        if status not in (None, "active", "canceled"):
            return self._bad("status", "must be one of active, canceled")
        if sort not in ("start_time:asc", "start_time:desc"):
            return self._bad("sort", "must be start_time:asc or start_time:desc")
        try:
            low, high = when(request, "min_start_time"), when(request, "max_start_time")
        except BadArgument as exc:
            return self._bad(exc.parameter, str(exc))
        user = request.arg("user") or (None if request.arg("organization") else self.me["uri"])
        email = request.arg("invitee_email")

        def keep(e: Row) -> bool:
            start = datetime.fromisoformat(e["start_time"].replace("Z", "+00:00"))
            host = path_of(e["event_memberships"][0]["user"])
            guests = self.invitees[path_of(e["uri"])]
            return ((status is None or e["status"] == status) and (low is None or start >= low)
                    and (high is None or start < high) and (user is None or host == path_of(user))
                    and (email is None or any(g["email"] == email for g in guests)))  # fmt: skip

        rows = [e for e in self.events if keep(e)]
        rows.sort(key=lambda e: e["start_time"], reverse=sort.endswith("desc"))
        return self._collection(request, rows)

    @route("GET", "/scheduled_events/{uuid}")
    def event(self, request: Request) -> Response:
        return self._find(self.events, request.path)

    @route("GET", "/scheduled_events/{uuid}/invitees")
    def invitees_list(self, request: Request) -> Response:
        guests = self.invitees.get(request.path.removesuffix("/invitees"))
        if guests is None:
            return self.error(404, "")
        status, email = request.arg("status"), request.arg("email")
        rows = [g for g in guests if (status is None or g["status"] == status)
                and (email is None or g["email"] == email)]  # fmt: skip
        rows.sort(
            key=lambda g: g["created_at"], reverse=request.arg("sort", "") == "created_at:desc"
        )
        return self._collection(request, rows)

    @route("GET", "/scheduled_events/{uuid}/invitees/{invitee}")
    def invitee(self, request: Request) -> Response:
        guests = self.invitees.get(path_of(request.path.rsplit("/invitees/", 1)[0]), [])
        return self._find(guests, request.path)

    @route("GET", "/webhook_subscriptions")
    def webhooks_list(self, request: Request) -> Response:
        if request.arg("scope") not in ("organization", "user", "group"):
            return self._bad("scope", "must be one of organization, user, group")
        return self._scope(request) or self._collection(request, [])

    @route("GET", "/routing_forms")
    def routing_forms_list(self, request: Request) -> Response:
        return self._scope(request) or self._collection(request, [])
