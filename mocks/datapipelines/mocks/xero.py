"""Mock of Xero's OAuth 2.0 token service and Accounting API 2.0, following Xero's docs
(developer.xero.com: oauth2 FAQ, limits FAQ; XeroAPI/Xero-OpenAPI xero_accounting.yaml and
xero-identity.yaml) as summarised in shared/SOURCES.md section 6. One server answers all
three real hosts: ``identity.xero.com/connect/token``, ``api.xero.com/connections`` and
``api.xero.com/api.xro/2.0/...``.

Credentials: client ``xero-client`` / ``xero-secret`` (HTTP Basic on ``POST /connect/token``);
initial refresh token ``xero-refresh-0``; authorization code ``xero-code`` (single use);
``xero-access-0`` is a valid access token from the start. ``grant_type=refresh_token`` ROTATES:
it answers a new refresh token and the old one is dead (400 ``{"error":"invalid_grant"}``),
unless ``grace_reuse=True`` (Xero's documented 30-minute retry window for a lost response:
the previous token then answers the current pair again). Access tokens last 1800 s
(``expire_access_tokens()`` ends them all).

Accounting calls need ``Authorization: Bearer <access>`` (else 401 problem JSON with
``WWW-Authenticate``) and ``Xero-tenant-id`` from ``GET /connections`` (else 403). Envelope
``{"Id","Status":"OK","ProviderName","DateTimeUTC":"/Date(ms)/","<Collection>":[...]}``;
``page=N`` (``pageSize`` default 100, max 1000, adds ``pagination``) on the documented
collections, no ``page`` means everything (Invoices then without LineItems); Items and the
reference data are unpaged. ``If-Modified-Since`` returns records with ``UpdatedDateUTC``
strictly after it. 429 carries ``Retry-After`` and ``X-Rate-Limit-Problem``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods (its Handler takes a plain MockApi)."""
    return cast(Callable[[_H], _H], _route(method, pattern))


CLIENT_ID, CLIENT_SECRET = "xero-client", "xero-secret"
INITIAL_REFRESH_TOKEN, AUTH_CODE = "xero-refresh-0", "xero-code"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
SCOPE = "offline_access accounting.transactions accounting.contacts accounting.settings"
_NS = uuid.UUID("6f1d2c1e-0000-4000-8000-00000000e1e0")

#: path -> (stream, id field, paged with ?page=N, filtered by If-Modified-Since)
COLLECTIONS: dict[str, tuple[str, str, bool, bool]] = {
    "Invoices": ("invoices", "InvoiceID", True, True),
    "Contacts": ("contacts", "ContactID", True, True),
    "CreditNotes": ("credit_notes", "CreditNoteID", True, True),
    "Payments": ("payments", "PaymentID", True, True),
    "BankTransactions": ("bank_transactions", "BankTransactionID", True, True),
    "ManualJournals": ("manual_journals", "ManualJournalID", True, True),
    "PurchaseOrders": ("purchase_orders", "PurchaseOrderID", True, True),
    "Prepayments": ("prepayments", "PrepaymentID", True, True),
    "Overpayments": ("overpayments", "OverpaymentID", True, True),
    "Items": ("items", "ItemID", False, True),
    "Accounts": ("accounts", "AccountID", False, True),
    "Users": ("users", "UserID", False, True),
    "Currencies": ("currencies", "Code", False, False),
    "TaxRates": ("tax_rates", "TaxType", False, False),
    "TrackingCategories": ("tracking_categories", "TrackingCategoryID", False, False),
    "Organisation": ("organisation", "OrganisationID", False, False),
}
STREAMS = tuple(spec[0] for spec in COLLECTIONS.values())
CHART = [
    ("200", "Sales", "REVENUE", "REVENUE"),
    ("260", "Other Revenue", "REVENUE", "REVENUE"),
    ("400", "Advertising", "EXPENSE", "EXPENSE"),
    ("404", "Bank Fees", "EXPENSE", "EXPENSE"),
    ("429", "General Expenses", "EXPENSE", "EXPENSE"),
    ("610", "Accounts Receivable", "CURRENT", "ASSET"),
    ("800", "Accounts Payable", "CURRLIAB", "LIABILITY"),
    ("090", "Business Bank Account", "BANK", "ASSET"),
    ("970", "Owner Funds", "EQUITY", "EQUITY"),
    ("820", "Sales Tax", "CURRLIAB", "LIABILITY"),
]


def guid(kind: str, i: int) -> str:
    return str(uuid.uuid5(_NS, f"{kind}-{i}"))


def xdate(ts: datetime) -> str:
    """Xero's JSON date: ``/Date(<epoch ms>+0000)/``."""
    return f"/Date({int(ts.timestamp() * 1000)}+0000)/"


def parse_since(value: str) -> datetime | None:
    """``If-Modified-Since`` as ``yyyy-mm-ddThh:mm:ss`` (UTC) or an HTTP date; None if bad."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _at(i: int) -> dict[str, Any]:
    ts = BASE + timedelta(hours=i)
    return {"UpdatedDateUTC": xdate(ts), "_updated": ts}


def _dated(i: int) -> dict[str, Any]:
    day = BASE + timedelta(hours=i)
    return {"Date": xdate(day), "DateString": day.strftime("%Y-%m-%dT00:00:00")}


def _contact(i: int) -> dict[str, Any]:
    return {
        "ContactID": guid("contact", i), "ContactNumber": f"C{i:05d}", "ContactStatus": "ACTIVE",
        "Name": f"Customer {i}", "FirstName": f"First{i}", "LastName": f"Last{i}",
        "EmailAddress": f"customer{i}@example.com", "IsSupplier": i % 4 == 0, "IsCustomer": True,
        "DefaultCurrency": "USD", "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": f"5{i:04d}"}],
        "Addresses": [{"AddressType": "POBOX", "City": "Wellington", "PostalCode": str(6000 + i)}],
        **_at(i),
    }  # fmt: skip


#: the transaction streams: stream -> (kind, id field, number field, rows divisor, Type)
DOCUMENTS = {
    "invoices": ("invoice", "InvoiceID", "InvoiceNumber", 1, "ACCREC"),
    "credit_notes": ("credit", "CreditNoteID", "CreditNoteNumber", 5, "ACCRECCREDIT"),
    "bank_transactions": ("bank", "BankTransactionID", "Reference", 1, "RECEIVE"),
    "purchase_orders": ("purchase", "PurchaseOrderID", "PurchaseOrderNumber", 5, None),
    "prepayments": ("prepayment", "PrepaymentID", "Reference", 10, "RECEIVE-PREPAYMENT"),
    "overpayments": ("overpayment", "OverpaymentID", "Reference", 10, "RECEIVE-OVERPAYMENT"),
}


def _document(stream: str, i: int, rows: int) -> dict[str, Any]:
    kind, id_field, number, _, type_ = DOCUMENTS[stream]
    lines: list[dict[str, Any]] = [
        {"LineItemID": guid(f"{kind}-line-{i}", k), "Description": f"Line {k}", "Quantity": 1.0,
         "UnitAmount": 10.0 * (k + 1), "LineAmount": 10.0 * (k + 1), "AccountCode": "200",
         "TaxType": "OUTPUT", "Tracking": []}
        for k in range(1 + i % 3)
    ]  # fmt: skip
    total = sum(line["LineAmount"] for line in lines)
    row = {id_field: guid(kind, i), **({"Type": type_} if type_ else {}), **_dated(i)}
    row |= {
        number: f"{kind[:3].upper()}-{i + 1:04d}", "Status": ("AUTHORISED", "PAID", "DRAFT")[i % 3],
        "Contact": {"ContactID": guid("contact", i % max(rows, 1)), "Name": f"Customer {i}"},
        "LineAmountTypes": "Exclusive", "LineItems": lines, "SubTotal": total, "TotalTax": 0.0,
        "Total": total, "CurrencyCode": "USD", **_at(i),
    }  # fmt: skip
    return row


def _simple(
    kind: str, id_field: str, n: int, **fields: Callable[[int], Any]
) -> list[dict[str, Any]]:
    return [
        {id_field: guid(kind, i), **{k: f(i) for k, f in fields.items()}, **_at(i)}
        for i in range(n)
    ]


def generate(rows: int) -> dict[str, list[dict[str, Any]]]:
    """The dataset: ``rows`` contacts, invoices and bank transactions, fewer of the rest."""
    bank = {"AccountID": guid("account", 7), "Code": "090", "Name": "Business Bank Account"}
    data = {
        name: [_document(name, i, rows) for i in range(rows // spec[3])]
        for name, spec in DOCUMENTS.items()
    }
    data["contacts"] = [_contact(i) for i in range(rows)]
    data["payments"] = _simple(
        "payment", "PaymentID", rows // 2,
        Amount=lambda i: 10.0 + i, PaymentType=lambda i: "ACCRECPAYMENT",
        Status=lambda i: "AUTHORISED", Account=lambda i: bank,
        Invoice=lambda i: {"InvoiceID": guid("invoice", i), "InvoiceNumber": f"INV-{i + 1:04d}"},
        Date=lambda i: _dated(i)["Date"],
    )  # fmt: skip
    data["manual_journals"] = _simple(
        "journal", "ManualJournalID", rows // 10,
        Narration=lambda i: f"Journal {i}", Status=lambda i: "POSTED",
        Date=lambda i: _dated(i)["Date"],
        JournalLines=lambda i: [{"LineAmount": 5.0, "AccountCode": "200"},
                                {"LineAmount": -5.0, "AccountCode": "400"}],
    )  # fmt: skip
    data["items"] = _simple(
        "item", "ItemID", max(1, rows // 5),
        Code=lambda i: f"ITEM-{i}", Name=lambda i: f"Item {i}", IsSold=lambda i: True,
        SalesDetails=lambda i: {"UnitPrice": 10.0 + i, "AccountCode": "200"},
    )  # fmt: skip
    data["accounts"] = _simple(
        "account", "AccountID", len(CHART),
        Code=lambda k: CHART[k][0], Name=lambda k: CHART[k][1], Type=lambda k: CHART[k][2],
        Class=lambda k: CHART[k][3], Status=lambda k: "ACTIVE", TaxType=lambda k: "NONE",
    )  # fmt: skip
    data["users"] = _simple(
        "user", "UserID", 3,
        EmailAddress=lambda k: f"user{k}@example.com", FirstName=lambda k: f"User{k}",
        LastName=lambda k: "Xero", IsSubscriber=lambda k: k == 0,
        OrganisationRole=lambda k: ("ADMIN", "STANDARD", "READONLY")[k],
    )  # fmt: skip
    data["currencies"] = [
        {"Code": "USD", "Description": "United States Dollar"},
        {"Code": "NZD", "Description": "New Zealand Dollar"},
        {"Code": "EUR", "Description": "Euro"},
    ]
    data["tax_rates"] = [
        {"Name": name, "TaxType": tax, "ReportTaxType": tax, "Status": "ACTIVE",
         "DisplayTaxRate": rate, "EffectiveRate": rate,
         "TaxComponents": [{"Name": name, "Rate": rate, "IsCompound": False}]}
        for name, tax, rate in (("Tax Exempt", "NONE", 0.0), ("Tax on Sales", "OUTPUT", 8.5),
                                ("Tax on Purchases", "INPUT", 8.5), ("Imports", "IMPORTS", 0.0))
    ]  # fmt: skip
    data["tracking_categories"] = [
        {"TrackingCategoryID": guid("tracking", k), "Name": name, "Status": "ACTIVE",
         "Options": [{"TrackingOptionID": guid(f"option-{k}", o), "Name": f"{name} {o}",
                      "Status": "ACTIVE"} for o in range(3)]}
        for k, name in enumerate(("Region", "Department"))
    ]  # fmt: skip
    data["organisation"] = [
        {"OrganisationID": guid("organisation", 0), "Name": "Demo Company",
         "LegalName": "Demo Company Ltd", "BaseCurrency": "USD", "CountryCode": "US",
         "OrganisationType": "COMPANY", "OrganisationStatus": "ACTIVE", "ShortCode": "!demo",
         "Version": "US", "CreatedDateUTC": xdate(BASE),
         "Addresses": [{"AddressType": "POBOX", "City": "Oaktown"}]}
    ]  # fmt: skip
    return data


class XeroApi(MockApi):
    vendor = "xero"

    def __init__(
        self,
        rows: int = 50,
        *,
        tenants: int = 1,
        grace_reuse: bool = False,
        rate_limit_problem: str = "minute",
    ) -> None:
        super().__init__()
        self.rows = rows
        self.grace_reuse = grace_reuse
        self.rate_limit_problem = rate_limit_problem
        self.current_refresh_token = INITIAL_REFRESH_TOKEN
        self.previous_refresh_token: str | None = None
        self.access_tokens: set[str] = {"xero-access-0"}
        self.refreshes = 0
        self.refused_refreshes = 0
        self.code_used = False
        self._generation = 0
        self._responses = 0
        self.clock = BASE + timedelta(hours=rows)
        self.connections = [
            {
                "id": guid("connection", t),
                "authEventId": guid("auth-event", t),
                "tenantId": guid("tenant", t),
                "tenantType": "ORGANISATION",
                "tenantName": f"Demo Company {t}",
                "createdDateUtc": BASE.strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                "updatedDateUtc": BASE.strftime("%Y-%m-%dT%H:%M:%S.0000000"),
            }
            for t in range(tenants)
        ]
        self.tenant_id = self.connections[0]["tenantId"]
        self.data: dict[str, list[dict[str, Any]]] = generate(rows)

    # ------------------------------------------------------------------ test controls

    def touch(self, n: int, stream: str = "invoices") -> list[str]:
        """Modify the first ``n`` records of ``stream`` one day after anything else."""
        spec = next((spec for spec in COLLECTIONS.values() if spec[0] == stream), None)
        if spec is None or not spec[3]:
            raise ValueError(f"{stream} is not a stream with UpdatedDateUTC")
        id_field = spec[1]
        with self.lock:
            self.clock += timedelta(days=1)
            for row in self.data[stream][:n]:
                row["_updated"], row["UpdatedDateUTC"] = self.clock, xdate(self.clock)
            return [row[id_field] for row in self.data[stream][:n]]

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def expected_counts(self, streams: Iterable[str] = STREAMS) -> dict[str, int]:
        """Rows a full sync loads per stream (default: every stream of SOURCES.md's table)."""
        return {name: len(self.data[name]) for name in streams}

    # ------------------------------------------------------------------ vendor shapes

    def authorize(self, request: Request) -> Response | None:
        if request.path == "/connect/token":
            return None  # client credentials are checked by the token route
        if request.bearer not in self.access_tokens:
            return self.error(401, "AuthenticationUnsuccessful")
        if request.path.startswith("/api.xro/") and request.headers.get("xero-tenant-id") not in {
            c["tenantId"] for c in self.connections
        }:
            return self.error(403, "AuthenticationUnsuccessful")
        return None

    def error(self, status: int, message: str) -> Response:
        with self.lock:
            self._responses += 1
            instance = guid("correlation", self._responses)
        headers = {"Xero-Correlation-Id": instance}
        if status == 400:
            body: Any = {"ErrorNumber": 10, "Type": "ValidationException",
                         "Message": "A validation exception occurred",
                         "Elements": [{"ValidationErrors": [{"Message": message}]}]}  # fmt: skip
        elif status == 404:
            body = "The resource you're looking for cannot be found"
        else:
            title = {429: "Too Many Requests"}.get(status, HTTPStatus(status).phrase)
            body = {"Type": None, "Title": title, "Status": status, "Detail": message,
                    "Instance": instance, "Extensions": {}}  # fmt: skip
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return Response(status, body, headers)

    def rate_limited(self, retry_after: float | None) -> Response:
        response = self.error(429, f"Rate limit exceeded ({self.rate_limit_problem})")
        response.headers["Retry-After"] = f"{retry_after if retry_after is not None else 60:g}"
        response.headers["X-Rate-Limit-Problem"] = self.rate_limit_problem
        return response

    # ------------------------------------------------------------------ OAuth 2.0

    @route("POST", "/connect/token")
    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        basic = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if basic != f"Basic {expected}":
            return Response(400, {"error": "invalid_client"})
        grant = form.get("grant_type")
        with self.lock:
            if grant == "refresh_token":
                given = form.get("refresh_token")
                if given == self.current_refresh_token:
                    self.refreshes += 1
                    return self._issue()
                if self.grace_reuse and given and given == self.previous_refresh_token:
                    return self._pair()
                self.refused_refreshes += 1
                return Response(400, {"error": "invalid_grant"})
            if grant == "authorization_code":
                if form.get("code") != AUTH_CODE or self.code_used:
                    return Response(400, {"error": "invalid_grant"})
                self.code_used = True
                return self._issue()
        return Response(400, {"error": "unsupported_grant_type"})

    def _issue(self) -> Response:
        self._generation += 1
        self.previous_refresh_token = self.current_refresh_token
        self.current_refresh_token = f"xero-refresh-{self._generation}"
        self.access_tokens.add(f"xero-access-{self._generation}")
        return self._pair()

    def _pair(self) -> Response:
        return Response(
            200,
            {
                "id_token": f"xero-id-{self._generation}",
                "access_token": f"xero-access-{self._generation}",
                "expires_in": 1800,
                "token_type": "Bearer",
                "refresh_token": self.current_refresh_token,
                "scope": SCOPE,
            },
        )

    # ------------------------------------------------------------------ API

    @route("GET", "/connections")
    def list_connections(self, request: Request) -> Response:
        return Response(200, self.connections)

    @route("GET", "/api.xro/2.0/{collection}")
    def collection(self, request: Request) -> Response:
        return self._answer(request, request.params["collection"], None)

    @route("GET", "/api.xro/2.0/{collection}/{id}")
    def single(self, request: Request) -> Response:
        return self._answer(request, request.params["collection"], request.params["id"])

    def _answer(self, request: Request, path: str, record_id: str | None) -> Response:
        spec = COLLECTIONS.get(path)
        if spec is None:
            return self.error(404, "not found")
        stream, id_field, paged, incremental = spec
        since = parse_since(request.headers.get("if-modified-since", ""))
        with self.lock:
            rows = [r for r in self.data[stream] if record_id in (None, r[id_field])]
            if record_id is not None and not rows:
                return self.error(404, "not found")
            if incremental and since is not None and record_id is None:
                rows = [r for r in rows if r["_updated"] > since]
            page = request.int_arg("page", 0) if paged and request.arg("page") else None
            body: dict[str, Any] = {}
            if page is not None:
                size = min(max(request.int_arg("pageSize", 100), 1), 1000)
                page = max(page, 1)
                pages = -(-len(rows) // size)
                body["pagination"] = {"page": page, "pageSize": size, "pageCount": pages,
                                      "itemCount": len(rows)}  # fmt: skip
                rows = rows[(page - 1) * size :][:size]
            summary = path == "Invoices" and page is None and record_id is None
            out = [
                {k: [] if summary and k == "LineItems" else v for k, v in r.items() if k[0] != "_"}
                for r in rows
            ]
            self._responses += 1
            envelope = {
                "Id": guid("response", self._responses),
                "Status": "OK",
                "ProviderName": "datapipelines mock",
                "DateTimeUTC": xdate(self.clock),
                **body,
                "Organisations" if path == "Organisation" else path: out,
            }
            headers = {
                "X-DayLimit-Remaining": str(max(5000 - self._responses, 0)),
                "X-MinLimit-Remaining": str(59 - self._responses % 60),
                "X-AppMinLimit-Remaining": "9999",
            }
        return Response(200, envelope, headers)
