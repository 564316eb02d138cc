"""The daemon's read-only view of the repo: policy, redaction, read and search commands, watcher."""
