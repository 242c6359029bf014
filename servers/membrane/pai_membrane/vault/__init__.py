"""The file layer of MemBrane: an Obsidian-compatible Markdown vault (files are the truth)."""
