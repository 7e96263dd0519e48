"""The SaaS sources a connection can name by type (``type: trello`` …): what a user sets for
each (Secret references with the exact keys it needs, the streams to sync, a base URL for
regional endpoints and tests) and the HTTP retry policy they share with ``rest_api``. The
runner expands each to dlt's declarative rest_api (``datapipelines.runner.saas``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import Field

from .meta import K8sModel, SecretRef, crd
from .oauth2 import OAuth2Refresh, oauth2_secret_name, oauth2_token_url


class HttpRetry(K8sModel):
    """How the source's HTTP client retries a 429, a 5xx or a dropped connection. A
    ``Retry-After`` header is honoured, capped at ``maxDelaySeconds``; otherwise waits grow
    exponentially (``backoffFactor`` * 2^attempt, capped too). The report counts the waits."""

    max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries per request, the first included (SaaS APIs that rate-limit: 8-10).",
    )
    backoff_factor: float = Field(
        default=1.0, ge=0, le=60, description="Seconds multiplied by 2^attempt between tries."
    )
    max_delay_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="The longest single wait, a Retry-After header's included.",
    )
    timeout_seconds: int = Field(
        default=60, ge=1, le=600, description="Timeout of one request (connect and read)."
    )


def requests_per_second_field(default: float | None = None) -> Any:
    """Client-side pacing: at most this many requests per second leave the runner (every try
    counts; a retry waits its turn too). Unset: as fast as the API answers."""
    shown = "unpaced" if default is None else f"{default:g}"
    return Field(
        default=default,
        gt=0,
        le=1000,
        description="Client-side pacing: at most this many requests per second, retries "
        f"included (default: {shown}; 429s are waited out either way).",
    )


def api_root(default: str, description: str = "API root (tests: a local mock).") -> Any:
    """A type's ``baseUrl``: its vendor's API root by default (regional roots and mocks
    otherwise)."""
    return Field(
        default=default, max_length=2048, pattern=r"^https?://[^\s]+$", description=description
    )


def streams_field(default: Callable[[], list[Any]], description: str) -> Any:
    """A type's ``streams``: the tables to sync, a set of the type's stream names."""
    return Field(
        default_factory=default,
        min_length=1,
        description=description,
        json_schema_extra=crd(**{"x-kubernetes-list-type": "set"}),
    )


def start_date_field(description: str) -> Any:
    """A type's ``startDate``: where the first run's incremental cursor starts (a date, or a
    date-time with a zone; UTC if none)."""
    return Field(
        default=None,
        max_length=40,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2}))?$",
        description=description,
    )


class SaasSource(K8sModel):
    """What every SaaS type has: its API root (overridable for regions and tests), the HTTP
    retry policy and optional pacing. Each type sets its own defaults."""

    base_url: str
    retry: HttpRetry
    requests_per_second: float | None = requests_per_second_field()


class TrelloStream(StrEnum):
    BOARDS = "boards"
    ORGANIZATIONS = "organizations"
    LISTS = "lists"
    MEMBERS = "members"
    CHECKLISTS = "checklists"
    CARDS = "cards"


#: What the original synced by default: every stream.
TRELLO_DEFAULT_STREAMS = list(TrelloStream)


class TrelloSource(SaasSource):
    """Trello (REST API v1): the boards of the token's member and, per board, its lists,
    members, checklists and cards; the member's organizations. Each table merges on ``id``."""

    base_url: str = api_root("https://api.trello.com/1")
    api_key_secret_ref: SecretRef = Field(description="The Power-Up/API key (query `key`).")
    token_secret_ref: SecretRef = Field(description="The member's API token (query `token`).")
    streams: list[TrelloStream] = streams_field(
        lambda: list(TRELLO_DEFAULT_STREAMS),
        "Tables to sync (default: all of them). `boards` is read in any case: the "
        "per-board streams follow it.",
    )
    board_ids: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Only these boards (default: every board of the member).",
        json_schema_extra=crd(
            **{"x-kubernetes-list-type": "set", "items": {"type": "string", "maxLength": 64}}
        ),
    )
    start_date: str | None = start_date_field(
        "Cards with activity at or after this date/time on the first run (default: all)."
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=8),
        description="HTTP retries and waits (Trello: 100 requests per 10 s per token).",
    )


class HubSpotStream(StrEnum):
    CONTACTS = "contacts"
    COMPANIES = "companies"
    DEALS = "deals"
    TICKETS = "tickets"
    PRODUCTS = "products"
    LINE_ITEMS = "line_items"
    CALLS = "calls"
    EMAILS = "emails"
    MEETINGS = "meetings"
    NOTES = "notes"
    TASKS = "tasks"
    OWNERS = "owners"
    DEAL_PIPELINES = "deal_pipelines"
    TICKET_PIPELINES = "ticket_pipelines"
    DEAL_LINE_ITEMS = "deal_line_items"


#: The CRM objects and engagements: read through the search API, incrementally.
HUBSPOT_OBJECTS = frozenset(list(HubSpotStream)[:11])
#: What the original synced by default: the CRM objects, the engagements, the owners, the
#: pipelines and the deals' line items.
HUBSPOT_DEFAULT_STREAMS = list(HubSpotStream)


class HubSpotSource(SaasSource):
    """HubSpot CRM (v3): the CRM objects and engagements with every property HubSpot lists for
    them (discovered per object before the sync), incrementally by their modified date; the
    owners, the deal and ticket pipelines, and each deal's line items (associations v4). Each
    table merges on its key."""

    base_url: str = api_root("https://api.hubapi.com")
    token_secret_ref: SecretRef = Field(
        description="A private app's access token (Authorization: Bearer)."
    )
    streams: list[HubSpotStream] = streams_field(
        lambda: list(HUBSPOT_DEFAULT_STREAMS),
        "Tables to sync (default: all of them).",
    )
    all_properties: bool = Field(
        default=True,
        description="Read every property of each object (discovered from "
        "/crm/v3/properties/{object}); false: HubSpot's default properties only.",
    )
    start_date: str | None = start_date_field(
        "Objects modified at or after this date/time on the first run (default: all)."
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=8),
        description="HTTP retries and waits (HubSpot: 100-200 requests per 10 s).",
    )


class IntercomStream(StrEnum):
    CONTACTS = "contacts"
    COMPANIES = "companies"
    CONVERSATIONS = "conversations"
    CONVERSATION_PARTS = "conversation_parts"
    TICKETS = "tickets"
    ADMINS = "admins"
    TEAMS = "teams"
    TAGS = "tags"


#: What the original synced by default (admins, teams, tags: on request).
INTERCOM_DEFAULT_STREAMS = [
    IntercomStream.CONTACTS,
    IntercomStream.COMPANIES,
    IntercomStream.CONVERSATIONS,
    IntercomStream.CONVERSATION_PARTS,
    IntercomStream.TICKETS,
]


class IntercomSource(SaasSource):
    """Intercom (REST API 2.x): contacts, companies, conversations with their parts, tickets,
    and on request admins, teams and tags. Each table merges on ``id``."""

    base_url: str = api_root(
        "https://api.intercom.io",
        "API root: https://api.intercom.io (US), https://api.eu.intercom.io, "
        "https://api.au.intercom.io, or a local mock.",
    )
    token_secret_ref: SecretRef = Field(description="An access token (Authorization: Bearer).")
    api_version: str = Field(
        default="2.14",
        max_length=16,
        pattern=r"^([0-9]+\.[0-9]+|Unstable)$",
        description="The Intercom-Version header.",
    )
    streams: list[IntercomStream] = streams_field(
        lambda: list(INTERCOM_DEFAULT_STREAMS),
        "Tables to sync (default: contacts, companies, conversations, "
        "conversation_parts, tickets). conversation_parts reads each conversation.",
    )
    start_date: str | None = start_date_field(
        "Contacts, conversations and tickets updated at or after this date/time on the first "
        "run (default: all)."
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=8),
        description="HTTP retries and waits (Intercom: 10,000 requests per minute per app).",
    )


class CalendlyStream(StrEnum):
    ORGANIZATIONS = "organizations"
    ORGANIZATION_MEMBERSHIPS = "organization_memberships"
    USERS = "users"
    EVENT_TYPES = "event_types"
    SCHEDULED_EVENTS = "scheduled_events"
    SCHEDULED_EVENT_INVITEES = "scheduled_event_invitees"


CALENDLY_DEFAULT_STREAMS = list(CalendlyStream)


class CalendlySource(SaasSource):
    """Calendly (API v2): the token's organization, its memberships and users, event types,
    scheduled events (active and canceled, from ``startDate`` on) and each event's invitees.
    Each table merges on ``uri``."""

    base_url: str = api_root("https://api.calendly.com")
    token_secret_ref: SecretRef = Field(
        description="A personal access token or OAuth access token (Authorization: Bearer)."
    )
    streams: list[CalendlyStream] = streams_field(
        lambda: list(CALENDLY_DEFAULT_STREAMS),
        "Tables to sync (default: all of them).",
    )
    start_date: str | None = start_date_field(
        "Scheduled events starting at or after this date/time (default: all)."
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=8),
        description="HTTP retries and waits (Calendly: about 500 requests per minute).",
    )


class PandaDocStream(StrEnum):
    DOCUMENTS = "documents"
    RECIPIENTS = "recipients"
    TOKENS = "tokens"
    TEMPLATES = "templates"


PANDADOC_DEFAULT_STREAMS = [
    PandaDocStream.DOCUMENTS,
    PandaDocStream.RECIPIENTS,
    PandaDocStream.TOKENS,
]


class PandaDocSource(SaasSource):
    """PandaDoc (public API v1): documents (incremental by ``date_modified``) and, from each
    changed document's details, its recipients and tokens; templates on request."""

    base_url: str = api_root("https://api.pandadoc.com")
    api_key_secret_ref: SecretRef = Field(description="An API key (Authorization: API-Key).")
    streams: list[PandaDocStream] = streams_field(
        lambda: list(PANDADOC_DEFAULT_STREAMS),
        "Tables to sync (default: documents, recipients, tokens).",
    )
    start_date: str | None = start_date_field(
        "Documents modified at or after this date/time on the first run (default: all)."
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=8),
        description="HTTP retries and waits (PandaDoc: 100 requests per minute per endpoint).",
    )


class WassengerStream(StrEnum):
    DEVICES = "devices"
    MESSAGES = "messages"
    CHATS = "chats"
    CONTACTS = "contacts"
    GROUPS = "groups"
    TEAM = "team"
    CAMPAIGNS = "campaigns"
    WEBHOOKS = "webhooks"


WASSENGER_DEFAULT_STREAMS = [
    WassengerStream.DEVICES,
    WassengerStream.MESSAGES,
    WassengerStream.CHATS,
    WassengerStream.CONTACTS,
    WassengerStream.GROUPS,
]


class WassengerSource(SaasSource):
    """Wassenger (WhatsApp API v1): devices, messages (incremental by ``createdAt``) and per
    device its chats, contacts and groups; team, campaigns and webhooks on request. An endpoint
    the account lacks (404/403) is skipped, as the original's probe did."""

    base_url: str = api_root("https://api.wassenger.com/v1")
    api_key_secret_ref: SecretRef = Field(description="An API key (header `Token`).")
    streams: list[WassengerStream] = streams_field(
        lambda: list(WASSENGER_DEFAULT_STREAMS),
        "Tables to sync (default: devices, messages, chats, contacts, groups).",
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=10),
        description="HTTP retries and waits (Wassenger publishes no limits; the original "
        "tried 10 times).",
    )


class FirefliesStream(StrEnum):
    TRANSCRIPTS = "transcripts"
    USERS = "users"


class FirefliesSource(SaasSource):
    """Fireflies.ai (GraphQL): meeting transcripts (with participants and summary; sentences
    on request), incremental by meeting date; users on request."""

    base_url: str = api_root(
        "https://api.fireflies.ai",
        "API root; the GraphQL endpoint is <baseUrl>/graphql (tests: a local mock).",
    )
    api_key_secret_ref: SecretRef = Field(description="An API key (Authorization: Bearer).")
    streams: list[FirefliesStream] = streams_field(
        lambda: [FirefliesStream.TRANSCRIPTS],
        "Tables to sync (default: transcripts; also users).",
    )
    sentences: bool = Field(
        default=False,
        description="Also load each transcript's sentences (large: every spoken line).",
    )
    lookback_minutes: int = Field(
        default=60,
        ge=0,
        le=1440,
        description="Re-read meetings this long before the last one loaded (late uploads); "
        "merged on id, so nothing doubles.",
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=4),
        description="HTTP retries and waits (Fireflies: 60 requests per minute on Business; "
        "50 per day on Free/Pro).",
    )


class XeroStream(StrEnum):
    ORGANISATION = "organisation"
    ACCOUNTS = "accounts"
    CONTACTS = "contacts"
    INVOICES = "invoices"
    CREDIT_NOTES = "credit_notes"
    PAYMENTS = "payments"
    BANK_TRANSACTIONS = "bank_transactions"
    MANUAL_JOURNALS = "manual_journals"
    PURCHASE_ORDERS = "purchase_orders"
    PREPAYMENTS = "prepayments"
    OVERPAYMENTS = "overpayments"
    ITEMS = "items"
    USERS = "users"
    CURRENCIES = "currencies"
    TAX_RATES = "tax_rates"
    TRACKING_CATEGORIES = "tracking_categories"


#: What the original synced by default: every stream.
XERO_DEFAULT_STREAMS = list(XeroStream)


class XeroSource(SaasSource):
    """Xero Accounting API 2.0 for one organisation (tenant), with OAuth 2.0 whose refresh
    token rotates on every use: the runner refreshes at the start and writes the new refresh
    token back to the Secret before reading any data. Transactions, contacts and the rest are
    incremental by ``UpdatedDateUTC`` (``If-Modified-Since``); reference data is read whole."""

    base_url: str = api_root(
        "https://api.xero.com",
        "API root: <baseUrl>/connections and <baseUrl>/api.xro/2.0 (tests: a mock).",
    )
    secret_name: str = oauth2_secret_name()
    token_url: str = oauth2_token_url(
        "https://identity.xero.com/connect/token", "Xero's token endpoint (tests: a mock)."
    )
    tenant_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9-]+$",
        description="The organisation (Xero-tenant-id) to sync (default: the first the grant "
        "connects, from GET /connections).",
    )
    streams: list[XeroStream] = streams_field(
        lambda: list(XERO_DEFAULT_STREAMS),
        "Tables to sync (default: all of them).",
    )
    start_date: str | None = start_date_field(
        "Records modified at or after this date/time on the first run (default: all)."
    )
    retry: HttpRetry = Field(
        default_factory=lambda: HttpRetry(max_attempts=10),
        description="HTTP retries and waits (Xero: 60 requests per minute per organisation; the "
        "original tried 10 times).",
    )
    requests_per_second: float | None = requests_per_second_field(1.0)

    @property
    def oauth2(self) -> OAuth2Refresh:
        return OAuth2Refresh(secret_name=self.secret_name, token_url=self.token_url)
