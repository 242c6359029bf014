"""The file layer of the memory: an Obsidian-compatible Markdown vault (files are the truth)."""
