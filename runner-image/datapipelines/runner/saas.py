"""The SaaS connection types expanded to dlt's declarative rest_api (pure apart from reading
the Secret files): the endpoints, pagination, parent/child streams and keys each vendor needs,
from the typed sub-object of the shared contract (``datapipelines.resources.saas``)."""

from __future__ import annotations

from typing import Any

from datapipelines.resources.connection import ConnectionSpec, RestApiSource, SourceType
from datapipelines.resources.saas import TrelloSource, TrelloStream

from . import secrets

#: Per-board Trello streams: (path under the board, query parameters).
TRELLO_PER_BOARD: dict[TrelloStream, tuple[str, dict[str, Any]]] = {
    TrelloStream.LISTS: ("lists", {"fields": "all"}),
    TrelloStream.MEMBERS: ("members", {"fields": "all"}),
    TrelloStream.CHECKLISTS: ("checklists", {"fields": "all", "checkItem_fields": "all"}),
    TrelloStream.CARDS: ("cards/all", {"fields": "all"}),
}


def is_saas(spec: ConnectionSpec) -> bool:
    return spec.type is SourceType.TRELLO


def expand(spec: ConnectionSpec) -> tuple[RestApiSource, list[str]]:
    """The rest_api source of a SaaS connection and the resources to load (the streams)."""
    if spec.type is SourceType.TRELLO and spec.source.trello is not None:
        return trello(spec.source.trello)
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
            resources.append(
                _merged(
                    stream.value,
                    {
                        "path": f"boards/{{board_id}}/{path}",
                        "params": {**query, "board_id": board_id},
                    },
                    include_from_parent=["id"],
                )
            )
    source = RestApiSource(
        base_url=src.base_url.rstrip("/") + "/",
        resources=resources,
        resource_defaults={"endpoint": {"params": params}},
        retry=src.retry,
    )
    return source, [s.value for s in src.streams]
