"""Mock of the Wassenger WhatsApp API v1 (``https://api.wassenger.com/v1``), following what
Wassenger publishes (wassengerhq/whatsapp-skills: api-validate.js, the MCP tools reference and
cookbooks) as summarised in shared/SOURCES.md section 8. The API is thinly documented: paths
beyond ``/devices``, ``/me`` and ``/messages`` and every error body are SOURCES.md's ``[U]``.

Credentials: ``Token: wassenger-token`` (or ``Authorization: Bearer wassenger-token``, the
documented alternative); else 401.

Lists are bare JSON arrays paged by ``page`` (from 0) and ``size`` (default 20, at most 100;
more is a 400); the end is a page shorter than ``size``. ``after``/``before`` (ISO 8601) bound
``createdAt`` on ``/messages`` and ``/campaigns``. Endpoints (name: path):
``me``, ``devices`` (``/devices``, ``/devices/{deviceId}``), ``messages``, ``chats``
(``/chat/{deviceId}/chats``), ``chat_messages`` (``/chat/{deviceId}/messages``, ``chat=``
filter), ``contacts`` (``/chat/{deviceId}/contacts``), ``groups`` (``/chat/{deviceId}/groups``),
``participants`` (``/chat/{deviceId}/chats/{groupWid}/participants``), ``labels`` and
``departments`` (``/devices/{deviceId}/...``), ``team``, ``campaigns``, ``webhooks``. A
``{deviceId}`` is a device's id, phone or alias; another value is 404. Endpoints named in
``missing`` answer 404 and in ``forbidden`` 403, as for an account without them. Errors are
``{"status": <code>, "message": ...}``; 429 adds ``Retry-After``.
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


TOKEN = "wassenger-token"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_SIZE, MAX_SIZE = 20, 100
ENDPOINTS = (
    "me", "devices", "messages", "chats", "chat_messages", "contacts", "groups",
    "participants", "labels", "departments", "team", "campaigns", "webhooks",
)  # fmt: skip
DEFAULT_STREAMS = ("devices", "messages", "chats", "contacts", "groups")
FILTERS = ("status", "phone", "device", "reference")  # exact-match filters of /messages
PER_DEVICE = ("chats", "chat_messages", "contacts", "groups", "labels", "departments")


def hex_id(kind: str, i: int) -> str:
    """A 24-hex id (Wassenger ids look like MongoDB ObjectIds), stable for (kind, i)."""
    return hashlib.sha256(f"{kind}-{i}".encode()).hexdigest()[:24]


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class WassengerApi(MockApi):
    vendor = "wassenger"

    def __init__(
        self,
        rows: int = 50,
        *,
        devices: int = 2,
        missing: Iterable[str] = (),
        forbidden: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.missing, self.forbidden = set(missing), set(forbidden)
        unknown = (self.missing | self.forbidden) - set(ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown Wassenger endpoints: {sorted(unknown)}")
        self.rows = rows
        self.clock = BASE + timedelta(hours=rows)
        self.devices = [self._device(d) for d in range(max(1, devices))]
        self.messages = [self._message(i, BASE + timedelta(hours=i)) for i in range(rows)]
        self.per_device: dict[str, dict[str, list[dict[str, Any]]]] = {
            dev["id"]: self._device_data(d, dev) for d, dev in enumerate(self.devices)
        }
        self.team = [
            {"id": hex_id("agent", k), "displayName": f"Agent {k}",
             "email": f"agent{k}@example.com", "role": ("admin", "supervisor", "agent", "agent")[k],
             "status": "active", "createdAt": iso(BASE + timedelta(minutes=k))}
            for k in range(4)
        ]  # fmt: skip
        self.campaigns = [
            {"id": hex_id("campaign", k), "name": f"Campaign {k}", "status": "completed",
             "device": self.devices[0]["id"], "createdAt": iso(BASE + timedelta(days=k))}
            for k in range(3)
        ]  # fmt: skip
        self.webhooks = [
            {"id": hex_id("webhook", k), "name": f"Webhook {k}", "url": f"https://example.com/h{k}",
             "events": ["message:in:new"], "device": self.devices[0]["id"], "status": "active"}
            for k in range(2)
        ]  # fmt: skip

    # ------------------------------------------------------------------ dataset

    def _device(self, d: int) -> dict[str, Any]:
        return {
            "id": hex_id("device", d), "alias": f"device-{d}", "phone": f"+3460000{d:04d}",
            "wid": f"3460000{d:04d}@c.us", "status": "ready", "sessionStatus": "online",
            "createdAt": iso(BASE - timedelta(days=30 - d)),
            "updatedAt": iso(BASE + timedelta(minutes=d)),
        }  # fmt: skip

    def _message(self, i: int, at: datetime) -> dict[str, Any]:
        device = self.devices[i % len(self.devices)]
        status = ("delivered", "read", "sent", "failed", "queued")[i % 5]
        return {
            "id": hex_id("message", i), "waId": f"3EB0{hex_id('wa', i)[:16].upper()}",
            "device": device["id"], "phone": f"+3461{i:07d}", "message": f"Hello #{i}",
            "status": status, "deliveryStatus": status, "reference": f"ref-{i}",
            "createdAt": iso(at), "updatedAt": iso(at + timedelta(seconds=5)),
            "deliverAt": iso(at), "processedAt": iso(at + timedelta(seconds=2)),
            "_at": at,
        }  # fmt: skip

    def _device_data(self, d: int, dev: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        def at(hours: int) -> str:
            return iso(BASE + timedelta(hours=hours))

        def person(prefix: str, c: int) -> dict[str, str]:
            number = f"{prefix}{d}{c:06d}"
            return {"wid": f"{number}@c.us", "phone": f"+{number}", "name": f"Contact {d}-{c}"}

        chats: list[dict[str, Any]] = [
            {"id": person("3461", c)["wid"], "name": person("3461", c)["name"], "type": "chat",
             "status": ("active", "pending", "resolved")[c % 3], "unreadCount": c % 4,
             "owner": {"agent": hex_id("agent", c % 4) if c % 3 != 1 else None,
                       "department": hex_id(f"department-{d}", c % 2)},
             "labels": [{"name": ("vip", "sales", "support")[c % 3]}],
             "lastMessageAt": at(c), "lastInboundAt": at(c), "expiresAt": at(c + 24),
             "statusUpdatedAt": at(c),
             "contact": {**person("3461", c),
                         "locationInfo": {"alpha2": "ES", "languages": [{"iso": "es"}]}}}
            for c in range(max(1, self.rows // 5))
        ]  # fmt: skip
        groups = [
            {"id": f"1203630{d}{g:08d}@g.us", "name": f"Group {d}-{g}", "description": None,
             "totalParticipants": 3, "isReadOnly": False, "createdAt": at(g),
             "participants": [{**person("3462", 10 * g + p), "isAdmin": p == 0,
                               "isSuperAdmin": p == 0} for p in range(3)]}
            for g in range(max(1, self.rows // 10))
        ]  # fmt: skip
        contacts = [
            {**person("3461", c), "type": "user", "createdAt": at(c), "updatedAt": at(c)}
            for c in range(self.rows // 2)
        ]
        chat_messages = [
            {"id": hex_id(f"chat-message-{d}", m), "chat": chats[m % len(chats)]["id"],
             "type": "text", "flow": "inbound" if m % 2 else "outbound", "body": f"Message {m}",
             "ack": "read", "date": at(m), "createdAt": at(m),
             "fromNumber": chats[m % len(chats)]["contact"]["phone"] if m % 2 else dev["phone"]}
            for m in range(self.rows)
        ]  # fmt: skip
        labels = [
            {"name": name, "color": color, "description": f"{name} chats", "createdAt": at(0)}
            for name, color in (("vip", "gold"), ("sales", "emerald"), ("support", "pool"))
        ]
        departments = [
            {"id": hex_id(f"department-{d}", k), "name": ("Sales", "Support")[k], "color": "pool",
             "agents": [hex_id("agent", a) for a in range(k, 4, 2)]}
            for k in range(2)
        ]  # fmt: skip
        return {"chats": chats, "chat_messages": chat_messages, "contacts": contacts,
                "groups": groups, "labels": labels, "departments": departments}  # fmt: skip

    # ------------------------------------------------------------------ test controls

    def touch(self, n: int) -> list[str]:
        """``n`` new queue messages, created after everything else; their ids."""
        with self.lock:
            new = []
            for _ in range(n):
                self.clock += timedelta(hours=1)
                new.append(self._message(len(self.messages), self.clock))
                self.messages.append(new[-1])
            return [m["id"] for m in new]

    def expected_counts(self, streams: Iterable[str] = DEFAULT_STREAMS) -> dict[str, int]:
        """Rows a full sync loads per stream (an endpoint in ``missing`` or ``forbidden``
        loads none); also ``chat_messages``, ``participants``, ``labels``, ``departments``,
        ``team``, ``campaigns``, ``webhooks``."""
        totals = {
            name: sum(len(data[name]) for data in self.per_device.values()) for name in PER_DEVICE
        }
        totals |= {
            "devices": len(self.devices), "messages": len(self.messages), "team": len(self.team),
            "campaigns": len(self.campaigns), "webhooks": len(self.webhooks),
            "participants": sum(len(g["participants"]) for data in self.per_device.values()
                                for g in data["groups"]),
        }  # fmt: skip
        return {s: 0 if s in self.missing | self.forbidden else totals[s] for s in streams}

    # ------------------------------------------------------------------ vendor shapes

    def authorize(self, request: Request) -> Response | None:
        given = request.headers.get("token") or request.bearer
        if given == TOKEN:
            return None
        return self.error(
            401, "Invalid API key" if given else "Missing API key: use the Token header"
        )

    def error(self, status: int, message: str) -> Response:
        """Wassenger publishes no error schema; a JSON object with ``status`` and ``message``."""
        return Response(status, {"status": status, "message": message})

    # ------------------------------------------------------------------ routes

    @route("GET", "/v1/me")
    def me(self, request: Request) -> Response:
        gate = self._gate("me")
        return gate or Response(200, {"id": hex_id("user", 0), "email": "owner@example.com",
                                      "name": "Mock Owner", "plan": "platform"})  # fmt: skip

    @route("GET", "/v1/devices")
    def list_devices(self, request: Request) -> Response:
        return self._page(request, "devices", self.devices)

    @route("GET", "/v1/devices/{deviceId}")
    def get_device(self, request: Request) -> Response:
        device = self._device_for(request)
        return self._gate("devices") or (
            device if isinstance(device, Response) else Response(200, device)
        )

    @route("GET", "/v1/messages")
    def list_messages(self, request: Request) -> Response:
        rows = [
            m for m in sorted(self.messages, key=lambda m: m["_at"], reverse=True)
            if all(request.arg(k) in (None, m[k]) for k in FILTERS)
        ]  # fmt: skip
        return self._page(request, "messages", self._window(request, rows))

    @route("GET", "/v1/chat/{deviceId}/chats")
    def list_chats(self, request: Request) -> Response:
        return self._per_device(request, "chats")

    @route("GET", "/v1/chat/{deviceId}/messages")
    def list_chat_messages(self, request: Request) -> Response:
        return self._per_device(request, "chat_messages", chat=request.arg("chat"))

    @route("GET", "/v1/chat/{deviceId}/contacts")
    def list_contacts(self, request: Request) -> Response:
        return self._per_device(request, "contacts")

    @route("GET", "/v1/chat/{deviceId}/groups")
    def list_groups(self, request: Request) -> Response:
        return self._per_device(request, "groups")

    @route("GET", "/v1/chat/{deviceId}/chats/{chatWid}/participants")
    def list_participants(self, request: Request) -> Response:
        device = self._device_for(request)
        if isinstance(device, Response):
            return self._gate("participants") or device
        groups = self.per_device[device["id"]]["groups"]
        group = next((g for g in groups if g["id"] == request.params["chatWid"]), None)
        if group is None:
            return self._gate("participants") or self.error(404, "Chat not found")
        return self._page(request, "participants", group["participants"])

    @route("GET", "/v1/devices/{deviceId}/labels")
    def list_labels(self, request: Request) -> Response:
        return self._per_device(request, "labels")

    @route("GET", "/v1/devices/{deviceId}/departments")
    def list_departments(self, request: Request) -> Response:
        return self._per_device(request, "departments")

    @route("GET", "/v1/team")
    def list_team(self, request: Request) -> Response:
        return self._page(request, "team", self.team)

    @route("GET", "/v1/campaigns")
    def list_campaigns(self, request: Request) -> Response:
        return self._page(request, "campaigns", self._window(request, self.campaigns))

    @route("GET", "/v1/webhooks")
    def list_webhooks(self, request: Request) -> Response:
        return self._page(request, "webhooks", self.webhooks)

    # ------------------------------------------------------------------ helpers

    def _gate(self, endpoint: str) -> Response | None:
        if endpoint in self.missing:
            return self.error(404, "Not found")
        if endpoint in self.forbidden:
            return self.error(403, "Your plan or API key does not grant access to this resource")
        return None

    def _device_for(self, request: Request) -> dict[str, Any] | Response:
        key = request.params["deviceId"]
        for device in self.devices:
            if key in (device["id"], device["alias"], device["phone"], device["phone"].lstrip("+")):
                return device
        return self.error(404, "Device not found")

    def _per_device(self, request: Request, name: str, chat: str | None = None) -> Response:
        device = self._device_for(request)
        if isinstance(device, Response):
            return self._gate(name) or device
        rows = self.per_device[device["id"]][name]
        return self._page(request, name, [r for r in rows if chat in (None, r.get("chat"))])

    def _window(self, request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        after = parse_iso(request.arg("after") or "") or datetime.min.replace(tzinfo=UTC)
        before = parse_iso(request.arg("before") or "") or datetime.max.replace(tzinfo=UTC)
        return [r for r in rows if after < (parse_iso(r["createdAt"]) or BASE) < before]

    def _page(self, request: Request, name: str, rows: list[dict[str, Any]]) -> Response:
        gate = self._gate(name)
        if gate is not None:
            return gate
        page, size = request.int_arg("page", 0), request.int_arg("size", DEFAULT_SIZE)
        if page < 0 or not 1 <= size <= MAX_SIZE:
            return self.error(400, f"Invalid pagination: page >= 0 and 1 <= size <= {MAX_SIZE}")
        with self.lock:
            out = [{k: v for k, v in r.items() if k[0] != "_"} for r in rows[page * size :][:size]]
        return Response(200, out)
