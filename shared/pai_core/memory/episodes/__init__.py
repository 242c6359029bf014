"""Past conversations: Claude Code session transcripts ingested as searchable episodes."""
