"""Traces: where they are stored or fetched, and how Ollie sees them."""
