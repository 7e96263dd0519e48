"""Mock of the Trello REST API v1 (``https://api.trello.com/1``), following
developer.atlassian.com/cloud/trello (REST API authorization, rate limits, the boards / cards /
actions / checklists resources) as summarised in shared/SOURCES.md section 1.

Credentials: query ``key=trello-key&token=trello-token`` on every call (also accepted as
``Authorization: OAuth oauth_consumer_key="trello-key", oauth_token="trello-token"``). A wrong
or missing key answers 401 text/plain ``invalid key``; a wrong or missing token ``invalid token``.

Endpoints (every path under ``/1``): ``GET /members/me`` (``/members/{id}``),
``/members/me/boards``, ``/members/me/organizations``, ``/organizations/{id}``, ``/boards/{id}``,
``/boards/{id}/lists`` (``filter`` open by default, or ``/lists/{filter}``),
``/boards/{id}/members``,
``/boards/{id}/labels``, ``/boards/{id}/checklists``, ``/boards/{id}/cards`` (visible) and
``/boards/{id}/cards/{all|open|closed|visible}``, ``/boards/{id}/actions``, ``/cards/{id}``.

Pagination: bare JSON arrays, no cursors. ``limit`` (actions: default 50, 0..1000) with
``before``/``since`` (an object id or an ISO date, both exclusive) pages newest-first; ids are
Mongo-style, their first 8 hex digits the creation time, so ids and dates compare alike. Without
``limit``/``before``/``since`` cards and checklists come whole, in position order.

Errors are plain text (``invalid id`` 400, ``The requested resource was not found.`` 404); a 429 is
``{"error":"API_TOKEN_LIMIT_EXCEEDED","message":"Rate limit exceeded"}`` (Trello documents no
rate headers; ``Retry-After`` only when the injected fault gives one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods."""
    return cast(Callable[[_H], _H], _route(method, pattern))


KEY, TOKEN = "trello-key", "trello-token"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
NOT_FOUND = "The requested resource was not found."
ID_RE = re.compile(r"^[0-9a-f]{24}$")
LABEL_COLORS = ("green", "yellow", "orange", "red", "purple", "blue")
Row = dict[str, Any]


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def oid(ts: datetime, kind: int, n: int) -> str:
    """A Trello-like object id: creation time (8 hex), then a kind and a counter."""
    return f"{int(ts.timestamp()):08x}{kind:04x}{n:012x}"


def bound(value: str | None, since: bool) -> str | None:
    """``since``/``before`` (an id or an ISO date) as an id to compare with; ValueError if bad."""
    if not value or value == "null":
        return None
    if ID_RE.match(value):
        return value
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return f"{int(ts.timestamp()):08x}" + ("f" if since else "0") * 16


def pick(row: Row, fields: str | None) -> Row:
    if fields is None or fields == "all":
        return dict(row)
    wanted = {"id", *fields.split(",")}
    return {k: v for k, v in row.items() if k in wanted}


class TrelloApi(MockApi):
    vendor = "trello"

    def __init__(self, rows: int = 50) -> None:
        super().__init__()
        nboards = 1 + rows // 50
        self.clock = BASE + timedelta(hours=rows + 24)  # "now": later than every generated row
        names = [("me", "Mock Owner"), ("ana", "Ana Lima"), ("ben", "Ben Ode"), ("cy", "Cy Tan")]
        self.members: list[Row] = []
        for n, (user, full) in enumerate(names):
            self.members.append(
                {"id": oid(BASE, 1, n), "username": f"{user}-mock", "fullName": full,
                 "initials": full[0] + full.split()[-1][0], "avatarHash": None, "avatarUrl": None,
                 "bio": "", "confirmed": True, "memberType": "normal", "activityBlocked": False,
                 "url": f"https://trello.com/{user}-mock", "idBoards": [], "idOrganizations": []}
            )  # fmt: skip
        self.me = self.members[0]
        org_id = oid(BASE, 2, 0)
        self.organizations: list[Row] = [
            {"id": org_id, "name": "mockworkspace", "displayName": "Mock Workspace", "desc": "",
             "url": "https://trello.com/w/mockworkspace", "website": None, "logoUrl": None,
             "idBoards": [], "powerUps": [], "prefs": {"permissionLevel": "private"}}
        ]  # fmt: skip
        self.boards: list[Row] = []
        self.lists: list[Row] = []
        self.labels: list[Row] = []
        self.cards: list[Row] = []
        self.checklists: list[Row] = []
        self.actions: list[Row] = []
        self.board_members: dict[str, list[str]] = {}
        for b in range(nboards):
            created = BASE + timedelta(minutes=b)
            bid, short = oid(created, 3, b), f"brd{b:05d}"
            who = [self.me["id"]] + [self.members[1 + (b + k) % 3]["id"] for k in (0, 1)]
            self.board_members[bid] = who
            self.boards.append(
                {"id": bid, "name": f"Board {b}", "desc": "", "descData": None, "closed": False,
                 "dateClosed": None, "idOrganization": org_id, "idEnterprise": None,
                 "pinned": False, "starred": False, "subscribed": False, "shortLink": short,
                 "url": f"https://trello.com/b/{short}/board-{b}",
                 "shortUrl": f"https://trello.com/b/{short}", "idMemberCreator": self.me["id"],
                 "dateLastActivity": iso(created), "dateLastView": None,
                 "prefs": {"permissionLevel": "org", "background": "blue"},
                 "labelNames": dict.fromkeys(LABEL_COLORS, ""), "powerUps": [], "idTags": [],
                 "memberships": [{"id": oid(created, 4, b * 8 + k), "idMember": m,
                                  "memberType": "admin" if k == 0 else "normal",
                                  "unconfirmed": False, "deactivated": False}
                                 for k, m in enumerate(who)]}
            )  # fmt: skip
            self.organizations[0]["idBoards"].append(bid)
            for m in who:
                next(x for x in self.members if x["id"] == m)["idBoards"].append(bid)
            for k, name in enumerate(("To Do", "Doing", "Done", "Archive")):
                lid = oid(created, 5, b * 4 + k)
                self.lists.append(
                    {"id": lid, "name": name, "closed": k == 3, "color": None, "idBoard": bid,
                     "pos": 16384 * (k + 1), "subscribed": False, "softLimit": None}
                )  # fmt: skip
                self._act("createList", created, {"list": {"id": lid, "name": name}}, bid)
            for k, color in enumerate(LABEL_COLORS):
                self.labels.append(
                    {"id": oid(created, 6, b * 6 + k), "idBoard": bid, "name": color.title(),
                     "color": color, "uses": 0}
                )  # fmt: skip
        self.me["idOrganizations"] = [org_id]
        for i in range(rows):
            self._add_card(i, nboards)

    # ------------------------------------------------------------------ dataset

    def _act(self, kind: str, when: datetime, data: Row, board_id: str) -> Row:
        board = next(b for b in self.boards if b["id"] == board_id)
        me = self.me
        action = {
            "id": oid(when, 7, len(self.actions)), "idMemberCreator": me["id"], "type": kind,
            "date": iso(when), "appCreator": None, "limits": {},
            "data": {**data, "board": {k: board[k] for k in ("id", "name", "shortLink")}},
            "memberCreator": {k: me[k] for k in ("id", "username", "fullName")},
        }  # fmt: skip
        self.actions.append(action)
        return action

    def _add_card(self, i: int, nboards: int) -> None:
        created = BASE + timedelta(hours=i + 1)
        board = self.boards[i % nboards]
        lists = [x for x in self.lists if x["idBoard"] == board["id"] and not x["closed"]]
        lst = lists[(i // nboards) % 3]
        labels = [x for x in self.labels if x["idBoard"] == board["id"]][i % 6 : i % 6 + 1]
        labels[0]["uses"] += 1
        cid, short = oid(created, 8, i), f"crd{i:05d}"
        card: Row = {
            "id": cid, "idShort": i // nboards + 1, "name": f"Card {i}", "desc": f"Description {i}",
            "descData": {"emoji": {}}, "closed": i % 10 == 9, "dueComplete": False, "due": None,
            "dueReminder": None, "start": None, "dateLastActivity": iso(created), "email": None,
            "idBoard": board["id"], "idList": lst["id"], "idMembersVoted": [],
            "idMembers": self.board_members[board["id"]][: 1 + i % 2],
            "idLabels": [x["id"] for x in labels], "labels": [dict(x) for x in labels],
            "idChecklists": [], "idAttachmentCover": None, "manualCoverAttachment": False,
            "pos": 16384 * (i + 1), "shortLink": short, "shortUrl": f"https://trello.com/c/{short}",
            "url": f"https://trello.com/c/{short}/{i}-card-{i}", "subscribed": False,
            "isTemplate": False,
            "cardRole": None, "checkItemStates": [], "cover": {"color": None, "size": "normal"},
            "badges": {"comments": 1 if i % 3 == 0 else 0, "attachments": 1 if i % 4 == 0 else 0,
                       "checkItems": 0, "checkItemsChecked": 0, "votes": 0},
        }  # fmt: skip
        if i % 2 == 0:
            clid = oid(created, 9, i)
            items = [
                {"id": oid(created, 10, i * 3 + k), "idChecklist": clid, "name": f"Step {k}",
                 "state": "complete" if k < i % 3 else "incomplete", "pos": 16384 * (k + 1),
                 "due": None, "idMember": None, "nameData": None}
                for k in range(3)
            ]  # fmt: skip
            self.checklists.append(
                {"id": clid, "name": "Checklist", "idBoard": board["id"], "idCard": cid,
                 "pos": 16384, "checkItems": items}
            )  # fmt: skip
            card["idChecklists"] = [clid]
            done = sum(1 for x in items if x["state"] == "complete")
            card["badges"].update(checkItems=3, checkItemsChecked=done)
        self.cards.append(card)
        ref = {"card": {k: card[k] for k in ("id", "name", "idShort", "shortLink")},
               "list": {"id": lst["id"], "name": lst["name"]}}  # fmt: skip
        self._act("createCard", created, ref, board["id"])
        if i % 3 == 0:
            when = created + timedelta(minutes=30)
            self._act("commentCard", when, {**ref, "text": "A comment"}, board["id"])

    def touch(self, n: int) -> list[str]:
        """Update ``n`` cards (spread over the dataset) at a later time: a new ``desc``, a newer
        ``dateLastActivity`` and an ``updateCard`` action. Returns their ids."""
        with self.lock:
            self.clock += timedelta(hours=1)
            n = min(n, len(self.cards))
            chosen = [self.cards[k * len(self.cards) // n] for k in range(n)]
            for step, card in enumerate(chosen):
                when = self.clock + timedelta(seconds=step)
                old = card["desc"]
                card["desc"] = f"{old} (edited {iso(when)})"
                card["dateLastActivity"] = iso(when)
                data = {"card": {"id": card["id"], "name": card["name"], "desc": card["desc"]},
                        "old": {"desc": old}}  # fmt: skip
                self._act("updateCard", when, data, card["idBoard"])
            return [c["id"] for c in chosen]

    def expected_counts(self) -> dict[str, int]:
        """Rows a full sync of the default streams loads (``members`` merge on ``id``; ``lists``
        with Trello's default ``open`` filter; ``cards`` from ``/cards/all``)."""
        member_ids = {m for ids in self.board_members.values() for m in ids}
        return {
            "boards": len(self.boards), "organizations": len(self.organizations),
            "lists": sum(1 for x in self.lists if not x["closed"]), "members": len(member_ids),
            "checklists": len(self.checklists), "cards": len(self.cards),
        }  # fmt: skip

    # ------------------------------------------------------------------ vendor shapes

    def authorize(self, request: Request) -> Response | None:
        header = dict(re.findall(r'(\w+)="?([^",]*)"?', request.headers.get("authorization", "")))
        key = request.arg("key") or header.get("oauth_consumer_key")
        token = request.arg("token") or header.get("oauth_token")
        if key != KEY:
            return Response(401, "invalid key")
        return None if token == TOKEN else Response(401, "invalid token")

    def error(self, status: int, message: str) -> Response:
        return Response(status, NOT_FOUND if status == 404 else message)

    def rate_limited(self, retry_after: float | None) -> Response:
        body = {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return Response(429, body, headers)

    def _board(self, request: Request) -> Row | Response:
        ref = request.params["id"]
        for b in self.boards:
            if ref in (b["id"], b["shortLink"]):
                return b
        return self.error(404, "") if ID_RE.match(ref) else self.error(400, "invalid id")

    def _window(
        self, request: Request, rows: list[Row], default: int | None
    ) -> list[Row] | Response:
        """Trello's ``since``/``before``/``limit``: newest first once any of them is given."""
        try:
            since, before = bound(request.arg("since"), True), bound(request.arg("before"), False)
        except ValueError:
            return self.error(400, "invalid date")
        raw, limit = request.arg("limit"), default
        if raw is not None:
            limit = int(raw) if raw.isdigit() else -1
            if not 0 <= limit <= 1000:
                return self.error(400, "invalid value for limit")
        if since is None and before is None and limit is None:
            return rows
        out = [
            r
            for r in rows
            if (since is None or r["id"] > since) and (before is None or r["id"] < before)
        ]
        out.sort(key=lambda r: r["id"], reverse=True)
        return out if limit is None else out[:limit]

    # ------------------------------------------------------------------ routes

    def _not_me(self, request: Request) -> bool:
        return request.params["id"] not in ("me", self.me["id"], self.me["username"])

    @route("GET", "/1/members/{id}")
    def member(self, request: Request) -> Response:
        if self._not_me(request):
            return self.error(404, "")
        return Response(200, pick(self.me, request.arg("fields")))

    @route("GET", "/1/members/{id}/boards")
    def my_boards(self, request: Request) -> Response:
        if self._not_me(request):
            return self.error(404, "")
        wanted = request.arg("filter", "all")
        rows = [b for b in self.boards if wanted in ("all", "members", "open", "organization")]
        return Response(200, [pick(b, request.arg("fields")) for b in rows])

    @route("GET", "/1/members/{id}/organizations")
    def my_organizations(self, request: Request) -> Response:
        if self._not_me(request):
            return self.error(404, "")
        return Response(200, [pick(o, request.arg("fields")) for o in self.organizations])

    @route("GET", "/1/organizations/{id}")
    def organization(self, request: Request) -> Response:
        for o in self.organizations:
            if request.params["id"] in (o["id"], o["name"]):
                return Response(200, pick(o, request.arg("fields")))
        return self.error(404, "")

    @route("GET", "/1/boards/{id}")
    def board(self, request: Request) -> Response:
        board = self._board(request)
        return (
            board
            if isinstance(board, Response)
            else Response(200, pick(board, request.arg("fields")))
        )

    @route("GET", "/1/boards/{id}/lists/{filter}")
    def board_lists_filtered(self, request: Request) -> Response:
        return self.board_lists(request)

    @route("GET", "/1/boards/{id}/lists")
    def board_lists(self, request: Request) -> Response:
        board = self._board(request)
        if isinstance(board, Response):
            return board
        wanted = request.params.get("filter") or request.arg("filter", "open")
        keep = {"all": (False, True), "open": (False,), "closed": (True,), "none": ()}.get(
            wanted or ""
        )
        if keep is None:
            return self.error(400, "invalid value for filter")
        rows = [x for x in self.lists if x["idBoard"] == board["id"] and x["closed"] in keep]
        return Response(200, [pick(x, request.arg("fields")) for x in rows])

    @route("GET", "/1/boards/{id}/members")
    def board_members_route(self, request: Request) -> Response:
        board = self._board(request)
        if isinstance(board, Response):
            return board
        ids = self.board_members[board["id"]]
        rows = [
            pick(m, request.arg("fields", "fullName,username"))
            for m in self.members
            if m["id"] in ids
        ]
        return Response(200, rows)

    @route("GET", "/1/boards/{id}/labels")
    def board_labels(self, request: Request) -> Response:
        board = self._board(request)
        if isinstance(board, Response):
            return board
        rows = [pick(x, request.arg("fields")) for x in self.labels if x["idBoard"] == board["id"]]
        return Response(200, rows)

    @route("GET", "/1/boards/{id}/checklists")
    def board_checklists(self, request: Request) -> Response:
        board = self._board(request)
        if isinstance(board, Response):
            return board
        rows = self._window(
            request, [c for c in self.checklists if c["idBoard"] == board["id"]], None
        )
        if isinstance(rows, Response):
            return rows
        item_fields = request.arg("checkItem_fields", "all")
        out = []
        for c in rows:
            row = pick(c, request.arg("fields"))
            if request.arg("checkItems", "all") != "none":
                row["checkItems"] = [pick(x, item_fields) for x in c["checkItems"]]
            out.append(row)
        return Response(200, out)

    @route("GET", "/1/boards/{id}/cards/{filter}")
    def board_cards_filtered(self, request: Request) -> Response:
        return self.board_cards(request)

    @route("GET", "/1/boards/{id}/cards")
    def board_cards(self, request: Request) -> Response:
        board = self._board(request)
        if isinstance(board, Response):
            return board
        wanted = request.params.get("filter") or request.arg("filter", "visible")
        keep = {"all": (False, True), "open": (False,), "visible": (False,), "closed": (True,)}
        if wanted not in keep:
            return self.error(400, "invalid value for filter")
        rows = [
            c for c in self.cards if c["idBoard"] == board["id"] and c["closed"] in keep[wanted]
        ]
        window = self._window(request, rows, None)
        if isinstance(window, Response):
            return window
        return Response(200, [self._card(c, request) for c in window])

    @route("GET", "/1/cards/{id}")
    def card(self, request: Request) -> Response:
        ref = request.params["id"]
        for c in self.cards:
            if ref in (c["id"], c["shortLink"]):
                return Response(200, self._card(c, request))
        return self.error(404, "") if ID_RE.match(ref) else self.error(400, "invalid id")

    def _card(self, card: Row, request: Request) -> Row:
        row = pick(card, request.arg("fields"))
        if request.arg("attachments") in ("true", "cover"):
            fields = request.arg("attachment_fields")
            attachment = {
                "id": oid(BASE, 11, int(card["id"][-12:], 16)), "name": "spec.pdf", "bytes": 1024,
                "date": card["dateLastActivity"], "mimeType": "application/pdf", "isUpload": True,
                "url": f"{card['url']}/attachments/spec.pdf", "idMember": self.me["id"],
            }  # fmt: skip
            row["attachments"] = [pick(attachment, fields)] if card["badges"]["attachments"] else []
        if request.arg("members") == "true":
            fields = request.arg("member_fields", "avatarHash,fullName,initials,username")
            row["members"] = [pick(m, fields) for m in self.members if m["id"] in card["idMembers"]]
        if request.arg("checklists") == "all":
            row["checklists"] = [c for c in self.checklists if c["idCard"] == card["id"]]
        if request.arg("stickers") == "true":
            row["stickers"] = []
        if request.arg("customFieldItems") == "true":
            row["customFieldItems"] = []
        return row

    @route("GET", "/1/boards/{id}/actions")
    def board_actions(self, request: Request) -> Response:
        board = self._board(request)
        if isinstance(board, Response):
            return board
        types = set((request.arg("filter") or "all").split(","))
        rows = [
            a for a in self.actions
            if a["data"]["board"]["id"] == board["id"] and ("all" in types or a["type"] in types)
        ]  # fmt: skip
        window = self._window(request, rows, 50)
        if isinstance(window, Response):
            return window
        return Response(200, [pick(a, request.arg("fields")) for a in window])
