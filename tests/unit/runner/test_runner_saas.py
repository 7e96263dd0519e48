"""SaaS connection types expanded to dlt's rest_api config (spec -> config, no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datapipelines.resources.connection import ConnectionSpec, WriteDisposition
from datapipelines.resources.saas import HubSpotStream
from datapipelines.runner import saas, secrets
from datapipelines.runner.paginators import HubSpotSearchPaginator
from datapipelines.runner.restconfig import rest_api_config


def trello_spec(**source: object) -> ConnectionSpec:
    return ConnectionSpec.model_validate(
        {
            "type": "trello",
            "schemaName": "trello_data",
            "source": {
                "trello": {
                    "apiKeySecretRef": {"name": "trello", "key": "key"},
                    "tokenSecretRef": {"name": "trello", "key": "token"},
                    **source,
                }
            },
        }
    )


@pytest.fixture
def secret_files(tmp_path: Path):
    (tmp_path / "trello").mkdir()
    (tmp_path / "trello" / "key").write_text("k-1")
    (tmp_path / "trello" / "token").write_text("t-1")
    secrets.set_secrets_dir(tmp_path)
    yield
    secrets.set_secrets_dir(None)


def test_trello_expands_to_boards_and_per_board_children(secret_files: None) -> None:
    src, streams = saas.expand(trello_spec())
    assert streams == ["boards", "organizations", "lists", "members", "checklists", "cards"]
    config = rest_api_config(src, WriteDisposition.APPEND)
    assert config["client"]["base_url"] == "https://api.trello.com/1/"
    assert config["resource_defaults"]["endpoint"]["params"] == {"key": "k-1", "token": "t-1"}
    by_name = {r["name"]: r for r in config["resources"]}
    assert by_name["boards"]["endpoint"]["path"] == "members/me/boards"
    cards = by_name["cards"]
    assert cards["endpoint"]["path"] == "boards/{board_id}/cards/all"
    assert cards["endpoint"]["params"]["board_id"] == {
        "type": "resolve",
        "resource": "boards",
        "field": "id",
    }
    assert cards["primary_key"] == "id" and cards["write_disposition"] == "merge"
    assert cards["include_from_parent"] == ["id"]
    assert src.retry is not None and src.retry.max_attempts == 8


def test_trello_stream_selection_keeps_boards_as_the_parent(secret_files: None) -> None:
    src, streams = saas.expand(trello_spec(streams=["cards"], boardIds=["b1"]))
    assert streams == ["cards"]
    names = [r["name"] for r in src.resources]
    assert names == ["boards", "cards"]
    (step,) = src.resources[0]["processing_steps"]
    assert step["filter"]({"id": "b1"}) and not step["filter"]({"id": "b2"})


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"streams": ["boards", "issues"]}, "streams"),
        ({"streams": []}, "streams"),
        ({"tokenSecretRef": {"name": "trello"}}, "tokenSecretRef"),
    ],
)
def test_trello_refuses_unknown_streams_and_incomplete_references(source: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        trello_spec(**source)


def test_trello_secrets_are_mounted() -> None:
    refs = trello_spec().secret_refs()
    assert [(r.name, r.key) for r in refs] == [("trello", "key"), ("trello", "token")]


def hubspot_spec(**source: object) -> ConnectionSpec:
    return ConnectionSpec.model_validate(
        {
            "type": "hubspot",
            "schemaName": "crm",
            "source": {
                "hubspot": {"tokenSecretRef": {"name": "hubspot", "key": "token"}, **source}
            },
        }
    )


@pytest.fixture
def hubspot_secret(tmp_path: Path):
    (tmp_path / "hubspot").mkdir()
    (tmp_path / "hubspot" / "token").write_text("pat-1")
    secrets.set_secrets_dir(tmp_path)
    yield
    secrets.set_secrets_dir(None)


def test_hubspot_searches_each_object_by_its_modified_date_with_discovered_properties(
    hubspot_secret: None,
) -> None:
    asked: list[tuple[str, str, str]] = []

    def find(base: str, token: str, kind: str) -> list[str]:
        asked.append((base, token, kind))
        return ["email", "hs_lastmodifieddate"]

    spec = hubspot_spec(streams=["contacts", "owners", "deal_pipelines"])
    assert spec.source.hubspot is not None
    src, streams = saas.hubspot(spec.source.hubspot, find)
    assert streams == ["contacts", "owners", "deal_pipelines"]
    assert asked == [("https://api.hubapi.com", "pat-1", "contacts")]  # owners: no discovery
    config = rest_api_config(src, WriteDisposition.APPEND)
    contacts, owners, pipelines = config["resources"]
    endpoint = contacts["endpoint"]
    assert (endpoint["path"], endpoint["method"]) == ("crm/v3/objects/contacts/search", "POST")
    assert endpoint["json"] == {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "lastmodifieddate",  # contacts: their own property
                        "operator": "GTE",
                        "value": "{incremental.start_value}",
                    }
                ]
            }
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "limit": 200,
        "properties": ["email", "hs_lastmodifieddate", "lastmodifieddate"],
    }
    assert isinstance(endpoint["paginator"], HubSpotSearchPaginator)
    incremental = endpoint["incremental"]
    assert incremental["cursor_path"] == "properties.lastmodifieddate"
    assert incremental["convert"]("1970-01-01T00:00:00.000Z") == "0"
    assert incremental["convert"]("2024-01-01T00:30:00.000Z") == "1704069000000"
    assert contacts["write_disposition"] == "merge" and contacts["primary_key"] == "id"
    assert owners["endpoint"]["path"] == "crm/v3/owners"
    assert owners["endpoint"]["paginator"]["cursor_path"] == "paging.next.after"
    assert pipelines["endpoint"]["path"] == "crm/v3/pipelines/deals"
    assert config["resource_defaults"]["endpoint"]["headers"] == {"Authorization": "Bearer pat-1"}
    src, _ = saas.hubspot(hubspot_spec(allProperties=False).source.hubspot, find)  # type: ignore[arg-type]
    assert all("properties" not in r["endpoint"].get("json", {}) for r in src.resources)


def test_hubspot_line_items_follow_the_deals_they_belong_to(hubspot_secret: None) -> None:
    spec = hubspot_spec(streams=["deal_line_items"], allProperties=False)
    src, streams = saas.hubspot(spec.source.hubspot, lambda *_: [])  # type: ignore[arg-type]
    assert streams == ["deal_line_items"]  # the deals are read, not reported as chosen
    deals, items = src.resources
    assert deals["name"] == "deals"
    assert items["endpoint"]["path"] == "crm/v4/objects/deals/{deal_id}/associations/line_items"
    assert items["primary_key"] == ["deal_id", "line_item_id"]
    (step,) = items["processing_steps"]
    assert step["map"]({"_deals_id": "7", "toObjectId": 9, "associationTypes": []}) == {
        "deal_id": "7",
        "line_item_id": "9",
        "association_types": [],
    }


class FakeResponse:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def json(self) -> dict[str, Any]:
        return self.body


class FakeRequest:
    def __init__(self, body: dict[str, Any]) -> None:
        self.json = body


def test_the_hubspot_search_starts_over_from_the_last_date_at_the_result_cap() -> None:
    paginator = HubSpotSearchPaginator("hs_lastmodifieddate", limit=2, cap=4)
    flt = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}
    request = FakeRequest({"filterGroups": [{"filters": [flt]}]})

    def row(ms: int) -> dict[str, Any]:
        return {"properties": {"hs_lastmodifieddate": str(ms)}}

    paginator.update_state(FakeResponse({"paging": {"next": {"after": "2"}}}), [row(1), row(2)])
    paginator.update_request(request)
    assert request.json["after"] == "2" and flt["value"] == "0"
    # the next page would pass the cap: a new search from the last row's date, after 0
    paginator.update_state(FakeResponse({"paging": {"next": {"after": "4"}}}), [row(3), row(5)])
    paginator.update_request(request)
    assert request.json["after"] == "0" and flt["value"] == "5" and paginator.restarts == 1
    assert paginator.has_next_page
    paginator.update_state(FakeResponse({}), [row(6)])
    assert not paginator.has_next_page
    # a whole window of one timestamp cannot be paged past: an error, not a loop
    stuck = HubSpotSearchPaginator("hs_lastmodifieddate", limit=2, cap=4)
    stuck.update_state(FakeResponse({"paging": {"next": {"after": "4"}}}), [row(5), row(5)])
    with pytest.raises(ValueError, match="share hs_lastmodifieddate"):
        stuck.update_state(FakeResponse({"paging": {"next": {"after": "4"}}}), [row(5), row(5)])


def test_intercom_lists_by_cursor_and_page_and_searches_tickets(tmp_path: Path) -> None:
    (tmp_path / "intercom").mkdir()
    (tmp_path / "intercom" / "token").write_text("ic-1")
    secrets.set_secrets_dir(tmp_path)
    try:
        spec = ConnectionSpec.model_validate(
            {
                "type": "intercom",
                "schemaName": "support",
                "source": {"intercom": {"tokenSecretRef": {"name": "intercom", "key": "token"}}},
            }
        )
        src, streams = saas.expand(spec)
    finally:
        secrets.set_secrets_dir(None)
    assert streams == ["contacts", "companies", "conversations", "conversation_parts", "tickets"]
    by_name = {r["name"]: r for r in src.resources}
    contacts = by_name["contacts"]["endpoint"]
    assert contacts["path"] == "contacts/search" and contacts["method"] == "POST"
    assert contacts["json"]["query"]["value"] == "{incremental.start_value}"
    assert contacts["incremental"] == {"cursor_path": "updated_at", "initial_value": 0}
    assert by_name["companies"]["endpoint"]["paginator"]["type"] == "page_number"
    tickets = by_name["tickets"]["endpoint"]
    assert tickets["method"] == "POST"
    assert tickets["paginator"]["cursor_body_path"] == "pagination.starting_after"
    parts = by_name["conversation_parts"]
    assert parts["endpoint"]["data_selector"] == "conversation_parts.conversation_parts"
    headers = src.resource_defaults["endpoint"]["headers"]
    assert headers["Authorization"] == "Bearer ic-1" and headers["Intercom-Version"] == "2.14"


def test_calendly_discovers_the_organization_and_follows_next_page(tmp_path: Path) -> None:
    (tmp_path / "calendly").mkdir()
    (tmp_path / "calendly" / "token").write_text("cal-1")
    secrets.set_secrets_dir(tmp_path)
    org = "https://api.calendly.com/organizations/ORG1"
    try:
        spec = ConnectionSpec.model_validate(
            {
                "type": "calendly",
                "schemaName": "meetings",
                "source": {
                    "calendly": {
                        "tokenSecretRef": {"name": "calendly", "key": "token"},
                        "startDate": "2024-06-01",
                    }
                },
            }
        )
        assert spec.source.calendly is not None
        src, streams = saas.calendly(spec.source.calendly, lambda base, token: org)
    finally:
        secrets.set_secrets_dir(None)
    by_name = {r["name"]: r for r in src.resources}
    events = by_name["scheduled_events"]["endpoint"]
    assert events["params"] == {
        "organization": org,
        "count": 100,
        "sort": "start_time:asc",
        "min_start_time": "2024-06-01",
    }
    assert events["paginator"] == {"type": "json_link", "next_url_path": "pagination.next_page"}
    assert by_name["organizations"]["endpoint"]["path"] == org
    assert by_name["scheduled_event_invitees"]["primary_key"] == "uri"
    step = saas.uuid_of("user.uri")
    assert step({"user": {"uri": "https://x/users/U1"}})["user_uuid"] == "U1"
    assert len(streams) == 6


def test_wassenger_pages_from_zero_and_skips_missing_endpoints(tmp_path: Path) -> None:
    (tmp_path / "wassenger").mkdir()
    (tmp_path / "wassenger" / "api-key").write_text("w-1")
    secrets.set_secrets_dir(tmp_path)
    try:
        spec = ConnectionSpec.model_validate(
            {
                "type": "wassenger",
                "schemaName": "whatsapp",
                "source": {
                    "wassenger": {"apiKeySecretRef": {"name": "wassenger", "key": "api-key"}}
                },
            }
        )
        src, streams = saas.expand(spec)
    finally:
        secrets.set_secrets_dir(None)
    assert streams == ["devices", "messages", "chats", "contacts", "groups"]
    by_name = {r["name"]: r for r in src.resources}
    chats = by_name["chats"]["endpoint"]
    assert chats["paginator"]["base_page"] == 0 and chats["paginator"]["stop_after_empty_page"]
    assert {"status_code": 404, "action": "ignore"} in chats["response_actions"]
    assert by_name["contacts"]["primary_key"] == ["_devices_id", "wid"]
    assert by_name["messages"]["endpoint"]["params"]["after"]["cursor_path"] == "createdAt"
    assert src.resource_defaults["endpoint"]["headers"] == {"Token": "w-1"}


def test_fireflies_pages_by_skip_in_the_variables_and_escapes_the_query(tmp_path: Path) -> None:
    (tmp_path / "fireflies").mkdir()
    (tmp_path / "fireflies" / "api-key").write_text("ff-1")
    secrets.set_secrets_dir(tmp_path)
    try:
        spec = ConnectionSpec.model_validate(
            {
                "type": "fireflies",
                "schemaName": "calls",
                "source": {
                    "fireflies": {"apiKeySecretRef": {"name": "fireflies", "key": "api-key"}}
                },
            }
        )
        src, streams = saas.expand(spec)
    finally:
        secrets.set_secrets_dir(None)
    assert streams == ["transcripts"]
    (transcripts,) = src.resources
    endpoint = transcripts["endpoint"]
    assert endpoint["method"] == "POST" and endpoint["path"] == "graphql"
    assert endpoint["paginator"]["offset_body_path"] == "variables.skip"
    assert endpoint["json"]["variables"] == {"fromDate": "{incremental.start_value}"}
    assert "{{" in endpoint["json"]["query"] and "{incremental" not in endpoint["json"]["query"]
    assert endpoint["incremental"]["lag"] == 3600
    assert saas.braces("a { b }") == "a {{ b }}"


def test_start_dates_become_each_cursors_first_value() -> None:
    assert saas.iso_ms(None) == "1970-01-01T00:00:00.000Z"
    assert saas.iso_ms("2024-03-01") == "2024-03-01T00:00:00.000Z"
    assert saas.iso_ms("2024-03-01T12:00:00+02:00") == "2024-03-01T10:00:00.000Z"
    assert saas.xero_date("2024-01-01") == "/Date(1704067200000+0000)/"
    assert saas.xero_date(None) == saas.XERO_EPOCH
    search = saas.hubspot_search(HubSpotStream.DEALS, [], "2024-03-01")
    assert search["incremental"]["initial_value"] == "2024-03-01T00:00:00.000Z"
    assert search["incremental"]["convert"]("2024-03-01T00:00:00.000Z") == "1709251200000"
    assert saas.intercom_search("contacts", "data", 1709251200)["incremental"] == {
        "cursor_path": "updated_at",
        "initial_value": 1709251200,
    }
