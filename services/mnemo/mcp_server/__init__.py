"""Mnemo as an MCP server (docs/tools.md): an agent's memory and conversation as MCP tools, over stdio
(`mnemo mcp`) or streamable HTTP at the gateway's `/mcp`. Both speak to the REST API with the caller's
API key, so a tenant reaches exactly what its key reaches there."""
