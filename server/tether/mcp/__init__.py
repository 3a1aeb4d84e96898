"""`tether mcp`: Tether as an MCP server over stdio, on the official ``mcp`` SDK.

- :mod:`~tether.mcp.server` wires the SDK's ``MCPServer`` (``create_server(config)``);
- :mod:`~tether.mcp.backend` settles the workspace and owns the worker thread and the store;
- :mod:`~tether.mcp.tools` and :mod:`~tether.mcp.resources` adapt Tether's services;
- :mod:`~tether.mcp.schemas` types the results and arguments.

Importing this package costs the SDK (about half a second): only ``tether mcp`` does.
"""
