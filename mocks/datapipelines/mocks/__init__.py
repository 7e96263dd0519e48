"""Local mocks of the SaaS APIs the connection types sync (written from each vendor's public
documentation; ../shared/SOURCES.md has the facts and their provenance). Test infrastructure:
never imported by a component. ``VENDORS`` maps a connection type to its mock class."""

from __future__ import annotations

from .server import MockApi, Request, Response, route, serve

__all__ = ["VENDORS", "MockApi", "Request", "Response", "mock_class", "route", "serve"]

#: connection type -> "module:Class" (imported on demand, so one vendor's bug breaks only it)
VENDORS: dict[str, str] = {
    "trello": "trello:TrelloApi",
    "hubspot": "hubspot:HubSpotApi",
    "intercom": "intercom:IntercomApi",
    "calendly": "calendly:CalendlyApi",
    "pandadoc": "pandadoc:PandaDocApi",
    "xero": "xero:XeroApi",
    "fireflies": "fireflies:FirefliesApi",
    "wassenger": "wassenger:WassengerApi",
}


def mock_class(vendor: str) -> type[MockApi]:
    import importlib

    module, _, name = VENDORS[vendor].partition(":")
    cls = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    assert isinstance(cls, type) and issubclass(cls, MockApi)
    return cls
