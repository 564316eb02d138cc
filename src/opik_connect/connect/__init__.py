"""The daemon: the user's side. It serves read-only repo access and applies approved fixes."""
