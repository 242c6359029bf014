"""PAI GPU jobs MCP server: The one fair queue for GPU work over Ollama and Stable Diffusion workers."""

__version__ = "0.1.0"
__all__ = ["__version__"]
