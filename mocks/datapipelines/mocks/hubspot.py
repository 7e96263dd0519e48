"""Mock of the HubSpot CRM API v3/v4 (``https://api.hubapi.com``), following
developers.hubspot.com (CRM objects, search, batch read, properties, owners, associations v4,
usage guidelines and error format) as summarised in shared/SOURCES.md section 2.

Credentials: ``Authorization: Bearer hubspot-token``; anything else answers 401
``{"status":"error","message":"Authentication credentials not found. ...","correlationId":...,
"category":"INVALID_AUTHENTICATION"}``.

Endpoints: ``GET /crm/v3/schemas`` (no custom objects), ``GET /crm/v3/properties/{object}``,
``GET /crm/v3/owners``, ``GET /crm/v3/pipelines/{deals|tickets}``,
``GET /crm/v3/objects/{object}`` (``limit`` default 10, max 100, ``after``, ``properties``),
``GET /crm/v3/objects/{object}/{id}``,
``POST /crm/v3/objects/{object}/search`` (``filterGroups`` EQ/NEQ/LT/LTE/GT/GTE/BETWEEN/IN/NOT_IN/
HAS_PROPERTY/NOT_HAS_PROPERTY/CONTAINS_TOKEN, ``sorts``, ``query``, ``limit`` 1..200, ``after`` an
offset, at most 10,000 results), ``POST /crm/v3/objects/{object}/batch/read`` (<=100 ids; 207 with
``errors`` for missing ids), ``GET /crm/v4/objects/{from}/{id}/associations/{to}``.
Objects: contacts, companies, deals, tickets, line_items, products, calls, emails, meetings, notes,
tasks (or their ``0-N`` type ids). Dates are ISO strings; filters take epoch ms (or ISO).

Pagination: ``paging.next.after`` (lists also ``paging.next.link``); no ``paging`` on the last page.
A 429 is ``{"status":"error","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING",...}``
with ``X-HubSpot-RateLimit-*`` headers (and ``Retry-After`` when the injected fault gives one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])
TOKEN = "hubspot-token"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
NO_AUTH = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
CATEGORIES = {400: "VALIDATION_ERROR", 401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES",
              404: "OBJECT_NOT_FOUND"}  # fmt: skip
ENGAGEMENTS = {"calls": "hs_call_body", "emails": "hs_email_text", "meetings": "hs_meeting_body",
               "notes": "hs_note_body", "tasks": "hs_task_body"}  # fmt: skip
TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-5": "tickets",
            "0-8": "line_items", "0-7": "products", "0-48": "calls", "0-49": "emails",
            "0-47": "meetings", "0-46": "notes", "0-27": "tasks"}  # fmt: skip
OBJECTS = ("contacts", "companies", "deals", "tickets", "line_items", "products", *ENGAGEMENTS)
DEFAULTS = {  # the properties a list or search returns when none are asked for
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"],
    "companies": ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
    "deals": ["amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"],
    "tickets": ["content", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_pipeline",
                "hs_pipeline_stage", "hs_ticket_category", "hs_ticket_priority", "subject"],
    "line_items": ["createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price",
                   "quantity"],
    "products": ["createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name",
                 "price"],
}  # fmt: skip
ASSOCIATION_TYPES = {("contacts", "companies"): 279, ("companies", "contacts"): 280,
                     ("deals", "companies"): 341, ("companies", "deals"): 342,
                     ("deals", "line_items"): 19, ("line_items", "deals"): 20,
                     ("tickets", "contacts"): 16, ("contacts", "tickets"): 15}  # fmt: skip
PIPELINES = {  # object → [(pipeline id, label, [(stage id, label)])]
    "deals": [("default", "Sales Pipeline", [("appointmentscheduled", "Appointment Scheduled"),
                                             ("closedwon", "Closed Won")])],
    "tickets": [("0", "Support Pipeline", [("1", "New"), ("2", "Waiting on contact"),
                                           ("3", "Waiting on us"), ("4", "Closed")])],
}  # fmt: skip
DATES = {"createdate", "hs_createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate",
         "hs_timestamp"}  # fmt: skip
NUMBERS = {"amount", "price", "quantity", "hs_object_id"}
OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}  # fmt: skip
Row = dict[str, Any]


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods."""
    return cast(Callable[[_H], _H], _route(method, pattern))


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def key(value: Any) -> float | str:
    """A property or filter value as something comparable: numbers and dates as floats (dates in
    epoch ms), anything else as lower-case text."""
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp() * 1000
    except ValueError:
        return text.lower()


def compare(a: float | str, b: float | str) -> int:
    if isinstance(a, float) and isinstance(b, float):
        return (a > b) - (a < b)
    sa, sb = str(a), str(b)
    return (sa > sb) - (sa < sb)


def sort_key(value: Any) -> tuple[int, float, str]:
    k = key("" if value is None else value)
    return (0, k, "") if isinstance(k, float) else (1, 0.0, k)


def matches(props: Row, f: Row) -> bool:
    op, raw = f.get("operator", "EQ"), props.get(f.get("propertyName", ""))
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return (raw not in (None, "")) == (op == "HAS_PROPERTY")
    if raw in (None, ""):
        return op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(f.get("value", "")).strip("*").lower()
        return (token in str(raw).lower()) == (op == "CONTAINS_TOKEN")
    a = key(raw)
    if op in ("IN", "NOT_IN"):
        return any(compare(a, key(v)) == 0 for v in f.get("values", [])) == (op == "IN")
    c = compare(a, key(f.get("value")))
    if op == "BETWEEN":
        return c >= 0 and compare(a, key(f.get("highValue"))) <= 0
    return {"EQ": c == 0, "NEQ": c != 0, "LT": c < 0, "LTE": c <= 0, "GT": c > 0, "GTE": c >= 0}[op]


class HubSpotApi(MockApi):
    vendor = "hubspot"

    def __init__(self, rows: int = 50) -> None:
        super().__init__()
        self._ids = 0
        self.clock = BASE + timedelta(hours=rows + 24)  # "now": later than every generated row
        self.owners: list[Row] = [
            {"id": str(100 + k), "email": f"owner{k}@example.com", "type": "PERSON",
             "firstName": f"Owner{k}", "lastName": "Mock", "userId": 9000 + k,
             "userIdIncludingInactive": 9000 + k, "createdAt": iso(BASE), "updatedAt": iso(BASE),
             "archived": False, "teams": [{"id": "1", "name": "Sales", "primary": True}]}
            for k in range(3)
        ]  # fmt: skip
        sizes = {"contacts": rows, "companies": rows // 5, "deals": rows // 2, "tickets": rows // 4,
                 "products": rows // 10, **dict.fromkeys(ENGAGEMENTS, rows // 10)}  # fmt: skip
        sizes = {kind: max(1, n) for kind, n in sizes.items()}
        sizes["line_items"] = 2 * sizes["deals"]
        self.objects: dict[str, list[Row]] = {}
        for k, kind in enumerate(OBJECTS):
            self.objects[kind] = [self._record(kind, k, i, sizes) for i in range(sizes[kind])]
        self.schema = {kind: set(rows_[0]["properties"]) for kind, rows_ in self.objects.items()}
        self.associations: dict[tuple[str, str], dict[str, list[str]]] = {}
        ids = {kind: [r["id"] for r in rows_] for kind, rows_ in self.objects.items()}
        pairs = [("contacts", "companies", lambda i: [i % sizes["companies"]]),
                 ("deals", "companies", lambda i: [i % sizes["companies"]]),
                 ("deals", "line_items", lambda i: [2 * i, 2 * i + 1]),
                 ("tickets", "contacts", lambda i: [i % sizes["contacts"]])]  # fmt: skip
        for src, dst, targets in pairs:
            forward = self.associations.setdefault((src, dst), {})
            backward = self.associations.setdefault((dst, src), {})
            for i, src_id in enumerate(ids[src]):
                for j in targets(i):
                    forward.setdefault(src_id, []).append(ids[dst][j])
                    backward.setdefault(ids[dst][j], []).append(src_id)

    # ------------------------------------------------------------------ dataset

    def _record(self, kind: str, k: int, i: int, sizes: dict[str, int]) -> Row:
        created = BASE + timedelta(hours=i, minutes=k)
        modified = iso(created + timedelta(minutes=30))
        owner = self.owners[i % len(self.owners)]["id"]
        rid = str((k + 1) * 100000 + i + 1)
        props: Row = {
            "hs_object_id": rid,
            "hs_lastmodifieddate": modified,
            "hubspot_owner_id": owner,
        }
        if kind == "contacts":
            props.update(email=f"contact{i}@example.com", firstname=f"First{i}",
                         lastname=f"Last{i}",
                         phone=f"+1555{i:07d}", lifecyclestage=("lead", "customer")[i % 2],
                         lastmodifieddate=modified)  # fmt: skip
        elif kind == "companies":
            props.update(name=f"Company {i}", domain=f"company{i}.example.com", city="Lisbon",
                         industry="COMPUTER_SOFTWARE")  # fmt: skip
        elif kind == "deals":
            props.update(dealname=f"Deal {i}", amount=str(1000 * (i + 1)), pipeline="default",
                         dealstage=("appointmentscheduled", "closedwon")[i % 2],
                         closedate=iso(created + timedelta(days=30)))  # fmt: skip
        elif kind == "tickets":
            props.update(subject=f"Ticket {i}", content=f"Problem {i}", hs_pipeline="0",
                         hs_pipeline_stage=str(1 + i % 4), hs_ticket_category=None,
                         hs_ticket_priority=("LOW", "MEDIUM", "HIGH")[i % 3])  # fmt: skip
        elif kind == "line_items":
            props.update(name=f"Item {i}", price="100", quantity=str(1 + i % 3),
                         hs_product_id=str(600001 + i % sizes["products"]))  # fmt: skip
        elif kind == "products":
            props.update(name=f"Product {i}", price="100", description=f"Product {i}",
                         hs_sku=f"SKU-{i}")  # fmt: skip
        else:
            props.update({"hs_timestamp": iso(created), ENGAGEMENTS[kind]: f"{kind} {i}"})
        props["hs_createdate" if kind in ENGAGEMENTS else "createdate"] = iso(created)
        return {"id": rid, "properties": props, "createdAt": iso(created), "updatedAt": modified,
                "archived": False}  # fmt: skip

    def touch(self, n: int, kind: str = "contacts") -> list[str]:
        """Modify ``n`` records of ``kind`` (spread over it) at a later time: a newer
        ``hs_lastmodifieddate`` (and ``lastmodifieddate``) and ``updatedAt``. Returns their ids."""
        with self.lock:
            self.clock += timedelta(hours=1)
            rows = self.objects[kind]
            n = min(n, len(rows))
            chosen = [rows[k * len(rows) // n] for k in range(n)]
            for step, row in enumerate(chosen):
                stamp = iso(self.clock + timedelta(seconds=step))
                row["updatedAt"] = row["properties"]["hs_lastmodifieddate"] = stamp
                if "lastmodifieddate" in row["properties"]:
                    row["properties"]["lastmodifieddate"] = stamp
            return [r["id"] for r in chosen]

    def expected_counts(self) -> dict[str, int]:
        """Rows a full sync of the default streams loads: one per record, owner, pipeline and
        deal-to-line-item association."""
        return {
            **{kind: len(rows) for kind, rows in self.objects.items()},
            "owners": len(self.owners),
            "deal_pipelines": len(PIPELINES["deals"]),
            "ticket_pipelines": len(PIPELINES["tickets"]),
            "deal_line_items": sum(
                len(targets) for targets in self.associations[("deals", "line_items")].values()
            ),
        }

    # ------------------------------------------------------------------ vendor shapes

    def _correlation(self) -> str:
        with self.lock:
            self._ids += 1
            return str(uuid.UUID(int=self._ids))

    def authorize(self, request: Request) -> Response | None:
        return None if request.bearer == TOKEN else self.error(401, NO_AUTH)

    def error(self, status: int, message: str) -> Response:
        body = {"status": "error", "message": message, "correlationId": self._correlation()}
        if status in CATEGORIES:
            body["category"] = CATEGORIES[status]
        return Response(status, body)

    def rate_limited(self, retry_after: float | None) -> Response:
        cid = self._correlation()
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": cid,
                "policyName": "TEN_SECONDLY_ROLLING", "requestId": cid}  # fmt: skip
        limits = {
            "Daily": "500000",
            "Daily-Remaining": "499000",
            "Interval-Milliseconds": "10000",
            "Max": "150",
            "Remaining": "0",
            "Secondly": "15",
            "Secondly-Remaining": "0",
        }
        headers = {f"X-HubSpot-RateLimit-{name}": value for name, value in limits.items()}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        return Response(429, body, headers)

    def _kind(self, request: Request, name: str = "object") -> str | Response:
        kind = TYPE_IDS.get(request.params[name], request.params[name])
        if kind in self.objects:
            return kind
        return self.error(400, f"Unable to infer object type from: {request.params[name]}")

    def _render(self, kind: str, row: Row, wanted: list[str] | None) -> Row:
        names = (
            wanted or DEFAULTS.get(kind) or ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"]
        )
        props = {n: row["properties"].get(n) for n in names if n in self.schema[kind]}
        return {**row, "properties": props}

    def _page(self, request: Request, rows: list[Row], default: int, most: int) -> Row | Response:
        """A list page: ``after`` is the id the next page starts at."""
        after = request.arg("after") or "0"
        if not after.isdigit():
            return self.error(400, f"Invalid after: {after}")
        limit = max(1, min(request.int_arg("limit", default), most))
        chosen = [r for r in rows if int(r["id"]) >= int(after)][: limit + 1]
        body: Row = {"results": chosen[:limit]}
        if len(chosen) > limit:
            query = {name: values[-1] for name, values in request.query.items()}
            query["after"] = chosen[limit]["id"]
            link = f"{self.url}{request.path}?{urlencode(query)}"
            body["paging"] = {"next": {"after": query["after"], "link": link}}
        return body

    # ------------------------------------------------------------------ routes

    @route("GET", "/crm/v3/schemas")
    def schemas(self, request: Request) -> Response:
        return Response(200, {"results": []})

    @route("GET", "/crm/v3/properties/{object}")
    def properties(self, request: Request) -> Response:
        kind = self._kind(request)
        if isinstance(kind, Response):
            return kind
        results = []
        for order, name in enumerate(sorted(self.schema[kind])):
            kind_of = "datetime" if name in DATES else "number" if name in NUMBERS else "string"
            field = {"datetime": "date", "number": "number"}.get(kind_of, "text")
            results.append(
                {"name": name, "label": name.replace("_", " ").title(), "type": kind_of,
                 "fieldType": field, "groupName": f"{kind[:-1]}information", "description": "",
                 "options": [], "displayOrder": order, "calculated": False,
                 "externalOptions": False, "hasUniqueValue": False, "hidden": False,
                 "hubspotDefined": True, "formField": True,
                 "modificationMetadata": {"archivable": True, "readOnlyDefinition": True,
                                          "readOnlyValue": name in DATES}, "archived": False,
                 "createdAt": iso(BASE), "updatedAt": iso(BASE)}
            )  # fmt: skip
        return Response(200, {"results": results})

    @route("GET", "/crm/v3/pipelines/{object}")
    def pipelines(self, request: Request) -> Response:
        kind = self._kind(request)
        if isinstance(kind, Response):
            return kind
        if kind not in PIPELINES:
            return self.error(400, f"Object type {kind} has no pipelines.")
        results = []
        for pid, label, stages in PIPELINES[kind]:
            results.append(
                {"id": pid, "label": label, "displayOrder": 0, "archived": False,
                 "createdAt": iso(BASE), "updatedAt": iso(BASE),
                 "stages": [{"id": sid, "label": slabel, "displayOrder": n, "archived": False,
                             "metadata": {"isClosed": str(sid in ("closedwon", "4")).lower()},
                             "createdAt": iso(BASE), "updatedAt": iso(BASE)}
                            for n, (sid, slabel) in enumerate(stages)]}
            )  # fmt: skip
        return Response(200, {"results": results})

    @route("GET", "/crm/v3/owners")
    def owners_list(self, request: Request) -> Response:
        page = self._page(request, self.owners, 100, 500)
        return page if isinstance(page, Response) else Response(200, page)

    @route("GET", "/crm/v3/objects/{object}")
    def objects_list(self, request: Request) -> Response:
        kind = self._kind(request)
        if isinstance(kind, Response):
            return kind
        page = self._page(request, self.objects[kind], 10, 100)
        if isinstance(page, Response):
            return page
        wanted = (request.arg("properties") or "").split(",") if request.arg("properties") else None
        page["results"] = [self._render(kind, r, wanted) for r in page["results"]]
        return Response(200, page)

    @route("GET", "/crm/v3/objects/{object}/{id}")
    def object_get(self, request: Request) -> Response:
        kind = self._kind(request)
        if isinstance(kind, Response):
            return kind
        for row in self.objects[kind]:
            if row["id"] == request.params["id"]:
                wanted = request.arg("properties")
                return Response(200, self._render(kind, row, wanted.split(",") if wanted else None))
        missing = self.error(404, "Object not found.  objectId are usually numeric.")
        missing.body["context"] = {"id": [request.params["id"]]}
        return missing

    @route("POST", "/crm/v3/objects/{object}/search")
    def search(self, request: Request) -> Response:
        kind = self._kind(request)
        if isinstance(kind, Response):
            return kind
        body = request.json() or {}
        groups = body.get("filterGroups") or []
        filters = [f for g in groups for f in g.get("filters", [])]
        if (
            len(groups) > 5
            or len(filters) > 25
            or any(len(g.get("filters", [])) > 10 for g in groups)
        ):
            return self.error(400, "Too many filters: at most 5 groups, 25 filters, 10 per group.")
        for f in filters:
            if f.get("operator", "EQ") not in OPERATORS:
                return self.error(400, f"Unknown operator: {f.get('operator')}")
            if f.get("propertyName") not in self.schema[kind]:
                return self.error(400, f"Unknown property: {f.get('propertyName')}")
        limit, after = int(body.get("limit", 10)), str(body.get("after") or "0")
        if not 1 <= limit <= 200 or not after.isdigit() or int(after) >= 10000:
            return self.error(400, "limit must be 1..200 and after below 10000 (search is capped).")
        rows = [
            r for r in self.objects[kind]
            if not groups or any(all(matches(r["properties"], f) for f in g.get("filters", []))
                                 for g in groups)
        ]  # fmt: skip
        if body.get("query"):
            text = str(body["query"]).lower()
            shown = DEFAULTS.get(kind, [])
            rows = [
                r for r in rows if any(text in str(r["properties"].get(n)).lower() for n in shown)
            ]
        for sort in reversed(body.get("sorts") or []):
            text = str(sort)
            spec = sort if isinstance(sort, dict) else {"propertyName": text.lstrip("-"),
                "direction": "DESCENDING" if text.startswith("-") else "ASCENDING"}  # fmt: skip
            name = str(spec.get("propertyName"))
            rows.sort(key=lambda r: sort_key(r["properties"].get(name)),
                      reverse=spec.get("direction") == "DESCENDING")  # fmt: skip
        start = int(after)
        wanted = body.get("properties") or None
        chosen = rows[start : start + limit]
        out: Row = {"total": len(rows), "results": [self._render(kind, r, wanted) for r in chosen]}
        if start + limit < len(rows):
            out["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, out)

    @route("POST", "/crm/v3/objects/{object}/batch/read")
    def batch_read(self, request: Request) -> Response:
        kind = self._kind(request)
        if isinstance(kind, Response):
            return kind
        body = request.json() or {}
        inputs = [str(x.get("id")) for x in body.get("inputs", [])]
        if not 1 <= len(inputs) <= 100:
            return self.error(400, "inputs must hold 1..100 ids")
        by_id = {r["id"]: r for r in self.objects[kind]}
        wanted = body.get("properties") or None
        out: Row = {"status": "COMPLETE",
                    "results": [self._render(kind, by_id[i], wanted) for i in inputs if i in by_id],
                    "startedAt": iso(self.clock), "completedAt": iso(self.clock)}  # fmt: skip
        missing = [i for i in inputs if i not in by_id]
        if missing:
            message = (f"Could not get some {kind.upper()} objects, they may be deleted or not "
                       "exist. Check that ids are valid.")  # fmt: skip
            out["numErrors"] = 1
            out["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                              "message": message, "context": {"ids": missing}}]  # fmt: skip
        return Response(207 if missing else 200, out)

    @route("GET", "/crm/v4/objects/{object}/{id}/associations/{to}")
    def associations_v4(self, request: Request) -> Response:
        src, dst = self._kind(request), self._kind(request, "to")
        if isinstance(src, Response):
            return src
        if isinstance(dst, Response):
            return dst
        if not any(r["id"] == request.params["id"] for r in self.objects[src]):
            return self.error(404, f"No {src} with id {request.params['id']}")
        targets = self.associations.get((src, dst), {}).get(request.params["id"], [])
        kinds = [{"category": "HUBSPOT_DEFINED", "typeId": ASSOCIATION_TYPES.get((src, dst)),
                  "label": None}]  # fmt: skip
        rows = [{"id": t, "toObjectId": int(t), "associationTypes": kinds} for t in targets]
        page = self._page(request, rows, 500, 500)
        if isinstance(page, Response):
            return page
        page["results"] = [{k: v for k, v in r.items() if k != "id"} for r in page["results"]]
        return Response(200, page)
