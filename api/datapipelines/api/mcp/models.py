"""Structured outputs of the MCP tools that the REST bodies do not give as one object.

Every other tool returns the REST API's own model (datapipelines.api.models) unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from datapipelines.api.models import ConnectionOut, HistoryEntryOut, TaskStatusOut


class ConnectionList(BaseModel):
    connections: list[ConnectionOut] = Field(description="Sorted by name.")


class HistoryOut(BaseModel):
    entries: list[HistoryEntryOut] = Field(description="Finished runs, newest first.")
    archive: Literal["ok", "unavailable", "not-configured"] = Field(
        description="Whether the PostgreSQL archive was read (`unavailable`: cluster runs only)."
    )


class WaitOut(BaseModel):
    ended: bool = Field(description="True when the run has ended; false when the wait timed out.")
    task: TaskStatusOut = Field(description="The run's task status when the wait returned.")
