"""The SDK floor for the cold-start benchmark: a hello-world MCPServer with one tool."""

from mcp.server import MCPServer

server = MCPServer("hello")


@server.tool()
def hello(name: str) -> str:
    """Say hello."""
    return f"hello {name}"


if __name__ == "__main__":
    server.run("stdio")
