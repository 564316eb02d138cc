"""Ollie: the tool-using loop, its model client, tools, prompt, events, sessions and transcripts."""
