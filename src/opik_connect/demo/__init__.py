"""`opik-connect demo`: the whole loop (log → analyze → test → improve → validate) in one command.

It copies the example project (fixtures/example_project) into a fresh git repo, logs production
traffic of its agent to the platform's trace sink with the real `opik` SDK (demo/production.py),
and runs the same parts `opik-connect` runs: the embedded platform (store, sessions, HTTP API)
and the daemon, over the real websocket, with FixParts (connect/fixes/daemon_wiring.py) serving
proposals and suites.
Ollie is the real tool-using loop; without ANTHROPIC_API_KEY its model turns and the judge's
verdicts are replayed from fixtures/demo/*.json by a local Messages API stand-in, and the demo
says so. The decision is the user's, through the real approval prompt (or --yes, which says so).

Exit codes: 0 the loop completed (suite failed before, passed after), 1 it did not, 2 there is no
terminal to approve in and --yes was not given.
"""

from opik_connect.demo.command import demo_command

__all__ = ["demo_command"]
