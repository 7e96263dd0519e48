"""The MCP endpoint of the API: Model Context Protocol over streamable HTTP at `/mcp`.

`McpEndpoint` (endpoint.py) builds the official SDK's server with the tools (tools.py), each a
thin wrapper over the same service functions as the REST routes, behind the same X-API-Key rule.
"""

from datapipelines.api.mcp.endpoint import MCP_PATH, McpEndpoint
from datapipelines.api.mcp.tools import ToolDeps

__all__ = ["MCP_PATH", "McpEndpoint", "ToolDeps"]
