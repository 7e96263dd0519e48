"""The MCP endpoint of the API: Model Context Protocol over streamable HTTP at `/mcp`.

`McpEndpoint` (endpoint.py) builds the official SDK's server with the tools (tools.py), each a
thin wrapper over the same service functions as the REST routes, behind the same X-API-Key rule.
The SDK (~30 MB of the API's memory) is imported on the first request to `/mcp`, not before.
"""

from datapipelines.api.mcp.deps import ToolDeps
from datapipelines.api.mcp.endpoint import MCP_PATH, McpEndpoint

__all__ = ["MCP_PATH", "McpEndpoint", "ToolDeps"]
