"""Serving generated skills: an OpenAI-compatible HTTP server and an MCP server (issue 6)."""
