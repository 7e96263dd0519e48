"""The SaaS connection types expanded to dlt's declarative rest_api (pure apart from reading
the Secret files): the endpoints, pagination, parent/child streams and keys each vendor needs,
from the typed sub-object of the shared contract (``datapipelines.resources.saas``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from datapipelines.resources.connection import AuthType, ConnectionSpec, RestApiAuth, RestApiSource
from datapipelines.resources.saas import (
    HUBSPOT_OBJECTS,
    CalendlySource,
    CalendlyStream,
    FirefliesSource,
    FirefliesStream,
    HubSpotSource,
    HubSpotStream,
    IntercomSource,
    IntercomStream,
    PandaDocSource,
    PandaDocStream,
    SaasSource,
    TrelloSource,
    TrelloStream,
    WassengerSource,
    WassengerStream,
    XeroSource,
    XeroStream,
)

from . import secrets
from .errors import ConfigError

#: Per-board Trello streams: (path under the board, query parameters).
TRELLO_PER_BOARD: dict[TrelloStream, tuple[str, dict[str, Any]]] = {
    TrelloStream.LISTS: ("lists", {"fields": "all"}),
    TrelloStream.MEMBERS: ("members", {"fields": "all"}),
    TrelloStream.CHECKLISTS: ("checklists", {"fields": "all", "checkItem_fields": "all"}),
    TrelloStream.CARDS: ("cards/all", {"fields": "all"}),
}


#: Cards load when their last activity is at or after the newest the previous run loaded
#: (a card without one loads each run); Trello has no server-side filter for cards.
TRELLO_CARDS_CURSOR = {"cursor_path": "dateLastActivity", "on_cursor_value_missing": "include"}


def start_of(start_date: str | None) -> datetime:
    """A type's ``startDate`` as an aware UTC date-time (the epoch without one)."""
    if not start_date:
        return datetime(1970, 1, 1, tzinfo=UTC)
    ts = datetime.fromisoformat(start_date.replace("Z", "+00:00"))
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)


def iso_ms(start_date: str | None) -> str:
    """``startDate`` as the vendors' ISO form with milliseconds (``…T00:00:00.000Z``): the
    cursor values it is compared with are text of that shape."""
    return start_of(start_date).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def is_saas(spec: ConnectionSpec) -> bool:
    return isinstance(spec.source_settings, SaasSource)


def expand(spec: ConnectionSpec) -> tuple[RestApiSource, list[str]]:
    """The rest_api source of a SaaS connection and the resources to load (the streams).
    Sources with a discovery step (HubSpot's properties, Calendly's organization) send its
    requests here."""
    settings = spec.source_settings
    match settings:
        case TrelloSource():
            return trello(settings)
        case HubSpotSource():
            return hubspot(settings, discover_properties)
        case IntercomSource():
            return intercom(settings)
        case CalendlySource():
            return calendly(settings, discover_organization)
        case PandaDocSource():
            return pandadoc(settings)
        case WassengerSource():
            return wassenger(settings)
        case FirefliesSource():
            return fireflies(settings)
        case XeroSource():
            return xero(settings, discover_tenant)
    raise ValueError(f"no SaaS expansion for type {spec.type.value}")


def _merged(name: str, endpoint: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": {"paginator": "single_page", **endpoint},
        "primary_key": "id",
        "write_disposition": "merge",
        **extra,
    }


def trello(src: TrelloSource) -> tuple[RestApiSource, list[str]]:
    """Boards of the token's member (the parent of every per-board stream), the member's
    organizations, and per board its lists, members, checklists and cards (``_boards_id`` ties
    a row to its board). Trello pages are bare arrays; these endpoints answer whole."""
    params = {
        "key": secrets.read(src.api_key_secret_ref),
        "token": secrets.read(src.token_secret_ref),
    }
    boards: dict[str, Any] = _merged(
        "boards", {"path": "members/me/boards", "params": {"fields": "all", "filter": "all"}}
    )
    if src.board_ids:
        wanted = frozenset(src.board_ids)
        boards["processing_steps"] = [{"filter": lambda board: board.get("id") in wanted}]
    resources: list[dict[str, Any]] = [boards]
    if TrelloStream.ORGANIZATIONS in src.streams:
        resources.append(
            _merged(
                "organizations", {"path": "members/me/organizations", "params": {"fields": "all"}}
            )
        )
    board_id = {"type": "resolve", "resource": "boards", "field": "id"}
    for stream, (path, query) in TRELLO_PER_BOARD.items():
        if stream in src.streams:
            endpoint: dict[str, Any] = {
                "path": f"boards/{{board_id}}/{path}",
                "params": {**query, "board_id": board_id},
            }
            if stream is TrelloStream.CARDS:
                endpoint["incremental"] = {
                    **TRELLO_CARDS_CURSOR,
                    "initial_value": iso_ms(src.start_date),
                }
            resources.append(_merged(stream.value, endpoint, include_from_parent=["id"]))
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"params": params}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- HubSpot --------------------------------------------------------------------------------

#: Properties per request: HubSpot answers 414 past ~8 KiB of URL; every property name fits.
HUBSPOT_MAX_PROPERTIES = 400
PropertyFinder = Callable[[str, str, str], list[str]]


def discover_properties(base_url: str, token: str, kind: str) -> list[str]:
    """The discovery step: every property HubSpot lists for ``kind`` (one request, with dlt's
    retrying HTTP client: a 429 is waited out)."""
    from dlt.sources.helpers.requests import client

    response = client.get(
        f"{base_url.rstrip('/')}/crm/v3/properties/{kind}",
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return sorted(str(p["name"]) for p in response.json().get("results", []) if p.get("name"))


#: The property search filters and sorts on: contacts carry their own, the rest HubSpot's.
HUBSPOT_MODIFIED = {HubSpotStream.CONTACTS: "lastmodifieddate"}
#: Rows per search page (HubSpot's maximum).
HUBSPOT_SEARCH_PAGE = 200
#: Streams read whole each run (no search): (path, data key).
HUBSPOT_LISTS: dict[HubSpotStream, str] = {
    HubSpotStream.OWNERS: "crm/v3/owners",
    HubSpotStream.DEAL_PIPELINES: "crm/v3/pipelines/deals",
    HubSpotStream.TICKET_PIPELINES: "crm/v3/pipelines/tickets",
}


def hubspot_search(
    kind: HubSpotStream, properties: list[str], start_date: str | None = None
) -> dict[str, Any]:
    """An incremental CRM object stream through the search API: modified at or after the last
    run's newest (epoch ms; everything on the first run), oldest first, 200 per page, and past
    HubSpot's 10,000-result cap a new search from the last date read
    (``paginators.HubSpotSearchPaginator``)."""
    from .paginators import HubSpotSearchPaginator, epoch_ms

    modified = HUBSPOT_MODIFIED.get(kind, "hs_lastmodifieddate")
    body: dict[str, Any] = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": modified,
                        "operator": "GTE",
                        "value": "{incremental.start_value}",
                    }
                ]
            }
        ],
        "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
        "limit": HUBSPOT_SEARCH_PAGE,
    }
    if properties:
        body["properties"] = sorted({*properties, modified})
    return {
        "path": f"crm/v3/objects/{kind.value}/search",
        "method": "POST",
        "json": body,
        "data_selector": "results",
        "paginator": HubSpotSearchPaginator(modified, HUBSPOT_SEARCH_PAGE),
        "incremental": {
            "cursor_path": f"properties.{modified}",
            "initial_value": iso_ms(start_date),
            "convert": epoch_ms,
        },
    }


def deal_line_item(item: dict[str, Any]) -> dict[str, Any]:
    """A deal's association row keyed by both ids (``_deals_id`` from the parent)."""
    return {
        "deal_id": str(item.get("_deals_id")),
        "line_item_id": str(item.get("toObjectId")),
        "association_types": item.get("associationTypes") or [],
    }


def hubspot(src: HubSpotSource, find: PropertyFinder) -> tuple[RestApiSource, list[str]]:
    """Each CRM object through the search API, incrementally by its modified date, with every
    property discovered for it (``allProperties``); owners and pipelines listed whole; each
    changed deal's line items through the v4 associations API."""
    token = secrets.read(src.token_secret_ref)
    cursor = {"type": "cursor", "cursor_path": "paging.next.after", "cursor_param": "after"}
    streams = set(src.streams)
    resources: list[dict[str, Any]] = []
    objects = [s for s in src.streams if s not in HUBSPOT_LISTS and s in HUBSPOT_OBJECTS]
    if HubSpotStream.DEAL_LINE_ITEMS in streams and HubSpotStream.DEALS not in objects:
        objects.append(HubSpotStream.DEALS)  # the parent of the associations
    for stream in objects:
        names = find(src.base_url, token, stream.value) if src.all_properties else []
        search = hubspot_search(stream, names[:HUBSPOT_MAX_PROPERTIES], src.start_date)
        resources.append(_merged(stream.value, search))
    for stream, path in HUBSPOT_LISTS.items():
        if stream in streams:
            endpoint: dict[str, Any] = {"path": path, "data_selector": "results"}
            if stream is HubSpotStream.OWNERS:
                endpoint.update(params={"limit": 100}, paginator=cursor)
            resources.append(_merged(stream.value, endpoint))
    if HubSpotStream.DEAL_LINE_ITEMS in streams:
        resources.append(
            {
                "name": HubSpotStream.DEAL_LINE_ITEMS.value,
                "endpoint": {
                    "path": "crm/v4/objects/deals/{deal_id}/associations/line_items",
                    "params": {
                        "limit": 500,
                        "deal_id": {"type": "resolve", "resource": "deals", "field": "id"},
                    },
                    "data_selector": "results",
                    "paginator": cursor,
                },
                "include_from_parent": ["id"],
                "processing_steps": [{"map": deal_line_item}],
                "primary_key": ["deal_id", "line_item_id"],
                "write_disposition": "merge",
            }
        )
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"headers": {"Authorization": f"Bearer {token}"}}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- Intercom -------------------------------------------------------------------------------

#: Single-page lists: (path, the key holding the rows).
INTERCOM_SMALL: dict[IntercomStream, tuple[str, str]] = {
    IntercomStream.ADMINS: ("admins", "admins"),
    IntercomStream.TEAMS: ("teams", "teams"),
    IntercomStream.TAGS: ("tags", "data"),
}


def intercom_search(kind: str, key: str, since: int = 0) -> dict[str, Any]:
    """An incremental stream through Intercom's search API: ``updated_at > <cursor>`` (unix
    seconds; 0 on the first run: everything), 150 per page, the cursor in the body. A re-run
    reads only what changed since the last one (the original's cursor, without lookback)."""
    return {
        "path": f"{kind}/search",
        "method": "POST",
        "json": {
            "query": {"field": "updated_at", "operator": ">", "value": "{incremental.start_value}"},
            "pagination": {"per_page": 150},
        },
        "data_selector": key,
        "paginator": {
            "type": "cursor",
            "cursor_path": "pages.next.starting_after",
            "cursor_body_path": "pagination.starting_after",
        },
        "incremental": {"cursor_path": "updated_at", "initial_value": since},
    }


def intercom(src: IntercomSource) -> tuple[RestApiSource, list[str]]:
    """Contacts, conversations and tickets through the search API, incrementally by
    ``updated_at``; companies by page (50 per page; Intercom has no search for them); each
    changed conversation read whole for its parts (``_conversations_id`` ties a part to it)."""
    token = secrets.read(src.token_secret_ref)
    streams = set(src.streams)
    since = int(start_of(src.start_date).timestamp())
    resources: list[dict[str, Any]] = []

    def add(name: str, endpoint: dict[str, Any], **extra: Any) -> None:
        resources.append(_merged(name, endpoint, **extra))

    if IntercomStream.CONTACTS in streams:
        add("contacts", intercom_search("contacts", "data", since))
    if IntercomStream.COMPANIES in streams:
        add(
            "companies",
            {
                "path": "companies",
                "params": {"per_page": 50},
                "data_selector": "data",
                "paginator": {
                    "type": "page_number",
                    "base_page": 1,
                    "page_param": "page",
                    "total_path": "pages.total_pages",
                },
            },
        )
    if streams & {IntercomStream.CONVERSATIONS, IntercomStream.CONVERSATION_PARTS}:
        add("conversations", intercom_search("conversations", "conversations", since))
    if IntercomStream.CONVERSATION_PARTS in streams:
        add(
            "conversation_parts",
            {
                "path": "conversations/{conversation_id}",
                "params": {
                    "conversation_id": {
                        "type": "resolve",
                        "resource": "conversations",
                        "field": "id",
                    }
                },
                "data_selector": "conversation_parts.conversation_parts",
            },
            include_from_parent=["id"],
        )
    if IntercomStream.TICKETS in streams:
        add("tickets", intercom_search("tickets", "tickets", since))
    for stream, (path, key) in INTERCOM_SMALL.items():
        if stream in streams:
            add(stream.value, {"path": path, "data_selector": key})
    headers = {
        "Authorization": f"Bearer {token}",
        "Intercom-Version": src.api_version,
        "Accept": "application/json",
    }
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"headers": headers}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- Calendly -------------------------------------------------------------------------------

OrganizationFinder = Callable[[str, str], str]
CALENDLY_PAGES = {"type": "json_link", "next_url_path": "pagination.next_page"}


def discover_organization(base_url: str, token: str) -> str:
    """The discovery step: the token's organization URI (``GET /users/me``)."""
    from dlt.sources.helpers.requests import client

    response = client.get(
        f"{base_url.rstrip('/')}/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    return str(response.json()["resource"]["current_organization"])


def uuid_of(field: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A step adding ``<field>_uuid``: the last segment of a Calendly resource URI, which the
    per-item child requests need (``/scheduled_events/{uuid}/invitees``)."""
    path = field.split(".")

    def add(item: dict[str, Any]) -> dict[str, Any]:
        value: Any = item
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str):
            item[f"{path[0]}_uuid"] = value.rstrip("/").rsplit("/", 1)[-1]
        return item

    return add


def calendly(src: CalendlySource, find: OrganizationFinder) -> tuple[RestApiSource, list[str]]:
    """The organization discovered from ``/users/me``; memberships, event types and scheduled
    events listed for it (100 per page, following ``pagination.next_page``); users read per
    membership and invitees per event. Every table merges on ``uri``."""
    token = secrets.read(src.token_secret_ref)
    organization = find(src.base_url, token)
    org = {"organization": organization, "count": 100}
    streams = set(src.streams)
    resources: list[dict[str, Any]] = []

    def add(name: str, endpoint: dict[str, Any], **extra: Any) -> None:
        resources.append(
            {
                "name": name,
                "endpoint": {
                    "paginator": CALENDLY_PAGES,
                    "data_selector": "collection",
                    **endpoint,
                },
                "primary_key": "uri",
                "write_disposition": "merge",
                **extra,
            }
        )

    if CalendlyStream.ORGANIZATIONS in streams:
        add(
            "organizations",
            {"path": organization, "paginator": "single_page", "data_selector": "resource"},
        )
    if streams & {CalendlyStream.ORGANIZATION_MEMBERSHIPS, CalendlyStream.USERS}:
        add(
            "organization_memberships",
            {"path": "organization_memberships", "params": dict(org)},
            processing_steps=[{"map": uuid_of("user.uri")}],
        )
    if CalendlyStream.USERS in streams:
        add(
            "users",
            {
                "path": "users/{user_uuid}",
                "params": {
                    "user_uuid": {
                        "type": "resolve",
                        "resource": "organization_memberships",
                        "field": "user_uuid",
                    }
                },
                "paginator": "single_page",
                "data_selector": "resource",
            },
        )
    if CalendlyStream.EVENT_TYPES in streams:
        add("event_types", {"path": "event_types", "params": dict(org)})
    if streams & {CalendlyStream.SCHEDULED_EVENTS, CalendlyStream.SCHEDULED_EVENT_INVITEES}:
        params: dict[str, Any] = {**org, "sort": "start_time:asc"}
        if src.start_date:
            params["min_start_time"] = src.start_date
        add(
            "scheduled_events",
            {"path": "scheduled_events", "params": params},
            processing_steps=[{"map": uuid_of("uri")}],
        )
    if CalendlyStream.SCHEDULED_EVENT_INVITEES in streams:
        add(
            "scheduled_event_invitees",
            {
                "path": "scheduled_events/{event_uuid}/invitees",
                "params": {
                    "event_uuid": {
                        "type": "resolve",
                        "resource": "scheduled_events",
                        "field": "uri_uuid",
                    },
                    "count": 100,
                },
            },
            include_from_parent=["uri"],
        )
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"headers": {"Authorization": f"Bearer {token}"}}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- PandaDoc -------------------------------------------------------------------------------

#: PandaDoc lists have no total and no cursor: pages from 1 until an empty one.
PANDADOC_PAGES = {
    "type": "page_number",
    "base_page": 1,
    "page_param": "page",
    "total_path": None,
    "stop_after_empty_page": True,
}


def pandadoc(src: PandaDocSource) -> tuple[RestApiSource, list[str]]:
    """Documents by page (100 each, oldest change first) from ``modified_from`` = the last run's
    largest ``date_modified`` (GTE, as the original); recipients and tokens from each listed
    document's details (``_documents_id`` ties them to it)."""
    key = secrets.read(src.api_key_secret_ref)
    streams = set(src.streams)
    resources: list[dict[str, Any]] = []
    if streams & {PandaDocStream.DOCUMENTS, PandaDocStream.RECIPIENTS, PandaDocStream.TOKENS}:
        resources.append(
            {
                "name": "documents",
                "endpoint": {
                    "path": "public/v1/documents",
                    "params": {
                        "count": 100,
                        "order_by": "date_modified",
                        "modified_from": {
                            "type": "incremental",
                            "cursor_path": "date_modified",
                            "initial_value": src.start_date or "1970-01-01T00:00:00Z",
                        },
                    },
                    "data_selector": "results",
                    "paginator": PANDADOC_PAGES,
                },
                "primary_key": "id",
                "write_disposition": "merge",
            }
        )
    document_id = {"type": "resolve", "resource": "documents", "field": "id"}
    for stream, key_columns in (
        (PandaDocStream.RECIPIENTS, ["_documents_id", "id"]),
        (PandaDocStream.TOKENS, ["_documents_id", "name"]),
    ):
        if stream in streams:
            resources.append(
                {
                    "name": stream.value,
                    "endpoint": {
                        "path": "public/v1/documents/{document_id}/details",
                        "params": {"document_id": document_id},
                        "data_selector": stream.value,
                        "paginator": "single_page",
                    },
                    "include_from_parent": ["id"],
                    "primary_key": key_columns,
                    # a changed document's rows replace all its earlier ones (a removed token
                    # or recipient goes too)
                    "merge_key": "_documents_id",
                    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
                }
            )
    if PandaDocStream.TEMPLATES in streams:
        resources.append(
            {
                "name": "templates",
                "endpoint": {
                    "path": "public/v1/templates",
                    "params": {"count": 100},
                    "data_selector": "results",
                    "paginator": PANDADOC_PAGES,
                },
                "primary_key": "id",
                "write_disposition": "merge",
            }
        )
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"headers": {"Authorization": f"API-Key {key}"}}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- Wassenger ------------------------------------------------------------------------------

#: Wassenger lists are bare arrays paged by ``page`` (from 0) and ``size``: until an empty page.
WASSENGER_PAGES = {
    "type": "page_number",
    "base_page": 0,
    "page_param": "page",
    "total_path": None,
    "stop_after_empty_page": True,
}
#: An endpoint the account lacks answers 404 (or 403): the stream is skipped, not the run.
WASSENGER_OPTIONAL = [
    {"status_code": 404, "action": "ignore"},
    {"status_code": 403, "action": "ignore"},
]
WASSENGER_PER_DEVICE = (WassengerStream.CHATS, WassengerStream.CONTACTS, WassengerStream.GROUPS)
WASSENGER_ACCOUNT = (WassengerStream.TEAM, WassengerStream.CAMPAIGNS, WassengerStream.WEBHOOKS)


def wassenger(src: WassengerSource) -> tuple[RestApiSource, list[str]]:
    """Devices (the parent of the per-device chats, contacts and groups), messages from the
    last ``createdAt`` on (``after``), and account lists on request; 100 per page."""
    key = secrets.read(src.api_key_secret_ref)
    streams = set(src.streams)
    resources: list[dict[str, Any]] = []

    def add(name: str, endpoint: dict[str, Any], **extra: Any) -> None:
        resources.append(
            {
                "name": name,
                "endpoint": {
                    "params": {"size": 100},
                    "paginator": WASSENGER_PAGES,
                    "response_actions": WASSENGER_OPTIONAL,
                    **endpoint,
                },
                "primary_key": "id",
                "write_disposition": "merge",
            }
            | extra
        )

    if streams & {WassengerStream.DEVICES, *WASSENGER_PER_DEVICE}:
        add("devices", {"path": "devices"})
    if WassengerStream.MESSAGES in streams:
        add(
            "messages",
            {
                "path": "messages",
                "params": {
                    "size": 100,
                    "after": {
                        "type": "incremental",
                        "cursor_path": "createdAt",
                        "initial_value": "1970-01-01T00:00:00Z",
                    },
                },
            },
        )
    device_id = {"type": "resolve", "resource": "devices", "field": "id"}
    for stream in WASSENGER_PER_DEVICE:
        if stream in streams:
            # a chat, contact or group belongs to a device (contacts are keyed by WhatsApp id)
            own_key = "wid" if stream is WassengerStream.CONTACTS else "id"
            add(
                stream.value,
                {
                    "path": f"chat/{{device_id}}/{stream.value}",
                    "params": {"size": 100, "device_id": device_id},
                },
                include_from_parent=["id"],
                primary_key=["_devices_id", own_key],
            )
    for stream in WASSENGER_ACCOUNT:
        if stream in streams:
            add(stream.value, {"path": stream.value})
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"headers": {"Token": key}}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- Fireflies ------------------------------------------------------------------------------

FIREFLIES_TRANSCRIPT_FIELDS = (
    "id title date dateString duration transcript_url meeting_link calendar_id "
    "organizer_email host_email participants summary { overview action_items outline keywords }"
)
FIREFLIES_TRANSCRIPTS = """query Transcripts($limit: Int, $skip: Int, $fromDate: DateTime) {
  transcripts(limit: $limit, skip: $skip, fromDate: $fromDate) { %s } }"""
FIREFLIES_USERS = "query Users { users { user_id email name num_transcripts minutes_consumed } }"


def braces(text: str) -> str:
    """``text`` with its braces doubled: dlt expands ``{…}`` in a request's JSON as
    placeholders, and a GraphQL query is made of braces."""
    return text.replace("{", "{{").replace("}", "}}")


def fireflies(src: FirefliesSource) -> tuple[RestApiSource, list[str]]:
    """Transcripts through GraphQL (``POST /graphql``), 50 per page by ``skip``/``limit`` in
    the query's variables, from ``fromDate`` = the last meeting loaded minus the lookback
    (``dateString``: Fireflies' ``date`` is epoch milliseconds); merged on ``id``, so a
    re-read meeting does not double. Participants (emails) become
    ``transcripts__participants``; sentences ``transcripts__sentences`` when asked for."""
    key = secrets.read(src.api_key_secret_ref)
    fields = FIREFLIES_TRANSCRIPT_FIELDS
    if src.sentences:
        fields += " sentences { index speaker_name text start_time end_time }"
    resources: list[dict[str, Any]] = []
    if FirefliesStream.TRANSCRIPTS in src.streams:
        lookback = src.lookback_minutes
        resources.append(
            {
                "name": "transcripts",
                "endpoint": {
                    "path": "graphql",
                    "method": "POST",
                    "json": {
                        "query": braces(FIREFLIES_TRANSCRIPTS % fields),
                        "variables": {"fromDate": "{incremental.start_value}"},
                    },
                    "data_selector": "data.transcripts",
                    "paginator": {
                        "type": "offset",
                        "limit": 50,
                        "offset_body_path": "variables.skip",
                        "limit_body_path": "variables.limit",
                        "total_path": None,
                        "stop_after_empty_page": True,
                    },
                    "incremental": {
                        "cursor_path": "dateString",
                        "initial_value": "1970-01-01T00:00:00.000Z",
                        "lag": lookback * 60,
                    },
                },
                "primary_key": "id",
                "write_disposition": "merge",
            }
        )
    if FirefliesStream.USERS in src.streams:
        resources.append(
            {
                "name": "users",
                "endpoint": {
                    "path": "graphql",
                    "method": "POST",
                    "json": {"query": braces(FIREFLIES_USERS)},
                    "data_selector": "data.users",
                    "paginator": "single_page",
                },
                "primary_key": "user_id",
                "write_disposition": "merge",
            }
        )
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"headers": {"Authorization": f"Bearer {key}"}}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]


# --- Xero -----------------------------------------------------------------------------------

#: stream -> (path under api.xro/2.0, the envelope's key, primary key, paged, If-Modified-Since)
XERO_COLLECTIONS: dict[XeroStream, tuple[str, str, str, bool, bool]] = {
    XeroStream.ORGANISATION: ("Organisation", "Organisations", "OrganisationID", False, False),
    XeroStream.ACCOUNTS: ("Accounts", "Accounts", "AccountID", False, True),
    XeroStream.CONTACTS: ("Contacts", "Contacts", "ContactID", True, True),
    XeroStream.INVOICES: ("Invoices", "Invoices", "InvoiceID", True, True),
    XeroStream.CREDIT_NOTES: ("CreditNotes", "CreditNotes", "CreditNoteID", True, True),
    XeroStream.PAYMENTS: ("Payments", "Payments", "PaymentID", True, True),
    XeroStream.BANK_TRANSACTIONS: (
        "BankTransactions",
        "BankTransactions",
        "BankTransactionID",
        True,
        True,
    ),
    XeroStream.MANUAL_JOURNALS: ("ManualJournals", "ManualJournals", "ManualJournalID", True, True),
    XeroStream.PURCHASE_ORDERS: ("PurchaseOrders", "PurchaseOrders", "PurchaseOrderID", True, True),
    XeroStream.PREPAYMENTS: ("Prepayments", "Prepayments", "PrepaymentID", True, True),
    XeroStream.OVERPAYMENTS: ("Overpayments", "Overpayments", "OverpaymentID", True, True),
    XeroStream.ITEMS: ("Items", "Items", "ItemID", False, True),
    XeroStream.USERS: ("Users", "Users", "UserID", False, True),
    XeroStream.CURRENCIES: ("Currencies", "Currencies", "Code", False, False),
    XeroStream.TAX_RATES: ("TaxRates", "TaxRates", "TaxType", False, False),
    XeroStream.TRACKING_CATEGORIES: (
        "TrackingCategories",
        "TrackingCategories",
        "TrackingCategoryID",
        False,
        False,
    ),
}
#: Xero's JSON dates: ``/Date(<epoch ms>[+-]hhmm)/``; 13 digits sort as text until 2286.
XERO_EPOCH = "/Date(0+0000)/"
TenantFinder = Callable[[str, str, str | None], str]


def xero_date(start_date: str | None) -> str:
    """``startDate`` as a Xero JSON date (``/Date(<epoch ms>+0000)/``), the cursor's shape."""
    if not start_date:
        return XERO_EPOCH
    return f"/Date({int(start_of(start_date).timestamp() * 1000)}+0000)/"


def xero_since(value: Any) -> str:
    """A cursor value (``/Date(ms+0000)/``) as the ``If-Modified-Since`` Xero takes: UTC
    ``yyyy-mm-ddThh:mm:ss`` (the second it falls in: rows of that second come again and are
    recognised, not loaded twice)."""
    import re

    match = re.search(r"(-?\d+)", str(value))
    ms = int(match.group(1)) if match else 0
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def discover_tenant(base_url: str, access_token: str, wanted: str | None) -> str:
    """The discovery step: the organisation to read (``GET /connections``), ``wanted`` if the
    grant connects it, else the first organisation."""
    from dlt.sources.helpers.requests import client

    response = client.get(
        f"{base_url.rstrip('/')}/connections",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    response.raise_for_status()
    tenants = [t for t in response.json() if isinstance(t, dict) and t.get("tenantId")]
    ids = [str(t["tenantId"]) for t in tenants]
    if wanted is not None:
        if wanted not in ids:
            raise ConfigError(
                f"xero.tenantId {wanted} is not connected to this grant (connected: "
                f"{', '.join(ids) or 'none'})"
            )
        return wanted
    organisations = [str(t["tenantId"]) for t in tenants if t.get("tenantType") == "ORGANISATION"]
    if not organisations:
        raise ConfigError("the Xero grant connects no organisation (GET /connections is empty)")
    return organisations[0]


def xero(src: XeroSource, find: TenantFinder) -> tuple[RestApiSource, list[str]]:
    """The access token refreshed (and the rotated refresh token stored) first; the
    organisation discovered; then each stream from ``/api.xro/2.0/<Path>`` with
    ``Xero-tenant-id``: transactions and contacts page by page (``pagination.pageCount``),
    everything with ``UpdatedDateUTC`` incrementally through ``If-Modified-Since``."""
    from . import oauth2

    grant = oauth2.grant(src.oauth2)
    tenant = find(src.base_url, grant.access_token(), src.tenant_id)
    resources: list[dict[str, Any]] = []
    for stream in src.streams:
        path, key, primary_key, paged, incremental = XERO_COLLECTIONS[stream]
        # per endpoint: an endpoint's headers replace the defaults' (dlt merges one level)
        headers = {"Xero-tenant-id": tenant, "Accept": "application/json"}
        endpoint: dict[str, Any] = {"path": path, "data_selector": key, "headers": headers}
        if paged:
            endpoint["paginator"] = {
                "type": "page_number",
                "base_page": 1,
                "page_param": "page",
                "total_path": "pagination.pageCount",
            }
        if incremental:
            headers["If-Modified-Since"] = "{incremental.start_value}"
            endpoint["incremental"] = {
                "cursor_path": "UpdatedDateUTC",
                "initial_value": xero_date(src.start_date),
                "convert": xero_since,
            }
        resources.append(_merged(stream.value, endpoint, primary_key=primary_key))
    source = RestApiSource(
        base_url=f"{src.base_url.rstrip('/')}/api.xro/2.0/",
        auth=RestApiAuth(type=AuthType.OAUTH2_REFRESH, oauth2=src.oauth2),
        resources=resources,
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]
