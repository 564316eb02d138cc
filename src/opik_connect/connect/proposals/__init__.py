"""Proposals: the edit engine, the journal, the decision state machine and its service."""
