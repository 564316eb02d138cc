"""Fix branches: building them, their records, and the CLI that reviews them."""
