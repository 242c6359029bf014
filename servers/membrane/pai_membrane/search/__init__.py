"""Search over everything MemBrane knows: facts, notes and conversation episodes."""
