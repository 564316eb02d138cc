"""Test suites: suite files, the agent-under-test runner, assertions, the judge and run records."""
