"""Paginators dlt's rest_api cannot be configured into: a vendor's page rules that need state
beyond a cursor. Pure apart from dlt's request and response objects; unit-tested with fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

#: HubSpot's search answers at most this many results per query; a page past it is a 400.
HUBSPOT_SEARCH_CAP = 10_000


def epoch_ms(value: Any) -> str:
    """An ISO date-time (or epoch ms) as the epoch-milliseconds string HubSpot's search filters
    take."""
    text = str(value)
    if text.isdigit():
        return text
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return str(int(ts.timestamp() * 1000))


class HubSpotSearchPaginator(JSONResponseCursorPaginator):
    """HubSpot's CRM search, sorted ascending by the modified-date property and filtered
    ``GTE`` a floor: ``paging.next.after`` goes into the body's ``after``; when the next page
    would pass the 10,000-result cap, the search starts over (``after`` 0) with the floor raised
    to the last row's modified date. Rows at that date are read again and merged on ``id``.
    More than one page of rows sharing one timestamp would loop: that stops with an error."""

    def __init__(self, date_property: str, limit: int, cap: int = HUBSPOT_SEARCH_CAP) -> None:
        super().__init__(cursor_path="paging.next.after", cursor_body_path="after")
        self.date_property = date_property
        self.limit = limit
        self.cap = cap
        self._floor: str | None = None
        self.restarts = 0

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        after = self._next_reference
        if after is None or not str(after).isdigit() or int(after) + self.limit <= self.cap:
            return
        last = None
        if data:
            props = data[-1].get("properties") if isinstance(data[-1], dict) else None
            last = props.get(self.date_property) if isinstance(props, dict) else None
        floor = epoch_ms(last) if last is not None else None
        if floor is None or floor == self._floor:
            raise ValueError(
                f"HubSpot search: more than {self.cap} records share {self.date_property} "
                f"{last}; the search cannot page past them"
            )
        self._floor = floor
        self.restarts += 1
        self._next_reference = "0"

    def update_request(self, request: Any) -> None:
        super().update_request(request)
        if self._floor is None or request.json is None:
            return
        for group in request.json.get("filterGroups") or []:
            for f in group.get("filters") or []:
                if f.get("propertyName") == self.date_property and f.get("operator") == "GTE":
                    f["value"] = self._floor
