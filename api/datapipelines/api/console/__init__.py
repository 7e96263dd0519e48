"""The web console at /ui/ (docs/console.md): server-rendered pages over the API's services."""

from datapipelines.api.console.routes import install

__all__ = ["install"]
