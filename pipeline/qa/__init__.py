"""Q&A avatar: match a visitor's question to a pre-approved answer, or fall back (README)."""
