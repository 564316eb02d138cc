"""Where a suite run's traces go: a project of its own, never the user's production project, and
tags naming the suite, item, run and commit (or fix branch) on every trace."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opik_connect.config import OpikSettings, ProjectConfig

_OPIK_VARIABLES = (
    "OPIK_URL_OVERRIDE",
    "OPIK_API_KEY",
    "OPIK_WORKSPACE",
    "OPIK_PROJECT_NAME",
    "OPIK_RUNNER_MODE",
)
"""Replaced, or dropped: OPIK_RUNNER_MODE would start Opik's own runner loop in every worker."""


LOCAL_ONLY = ("OPIK_ANALYTICS_ENABLE", "OPIK_SENTRY_ENABLE")
"""The SDK's usage analytics and error reports to Comet, off when it logs to the platform's sink
(unless the user's environment says otherwise)."""


@dataclass(frozen=True)
class TraceSink:
    """The platform's trace sink: the SDK's OPIK_URL_OVERRIDE and the token it takes as API key."""

    url: str
    token: str
    verify_tls: bool = True
    """False when the daemon reached the platform with --insecure: the SDK then skips the
    certificate check too, or an https sink with a self-signed certificate refuses every trace."""


@dataclass(frozen=True)
class SuiteTracing:
    """The workers' environment and the line the suite header shows about tracing."""

    env: dict[str, str]
    project: str
    destination: str


def suite_project_name(root: Path, config: ProjectConfig, settings: OpikSettings) -> str:
    """`[tool.opik-connect] suite-project`, else `<Opik project or directory name>-suites`."""
    return config.suite_project or f"{settings.project_name or root.name}-suites"


def suite_tracing(
    root: Path,
    config: ProjectConfig,
    settings: OpikSettings,
    environ: Mapping[str, str] | None = None,
    sink: TraceSink | None = None,
) -> SuiteTracing:
    """The user's environment with Opik's variables replaced: the resolved server, and the suite
    project instead of whatever OPIK_PROJECT_NAME the user's shell has. With no server
    configured, traces go to the platform's `sink` when the daemon has one, else the SDK's
    tracking is switched off rather than left to guess a destination."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()}
    for name in _OPIK_VARIABLES:
        env.pop(name, None)
    project = suite_project_name(root, config, settings)
    if settings.url is None and sink is not None:
        env.update(
            OPIK_URL_OVERRIDE=sink.url,
            OPIK_API_KEY=sink.token,
            OPIK_WORKSPACE="default",
            OPIK_PROJECT_NAME=project,
        )
        for name in LOCAL_ONLY:  # the traces stay on the platform: so do the SDK's reports
            env.setdefault(name, "false")
        where = f"traces → the platform's sink at {sink.url}"
        if not sink.verify_tls:
            env["OPIK_CHECK_TLS_CERTIFICATE"] = "false"
            where += " (certificate not verified: --insecure)"
        return SuiteTracing(env, project, where)
    if settings.url is None:
        env["OPIK_TRACK_DISABLE"] = "true"
        return SuiteTracing(env, project, "no Opik server configured: suite traces are not sent")
    env["OPIK_URL_OVERRIDE"] = settings.url
    env["OPIK_PROJECT_NAME"] = project
    if settings.api_key:
        env["OPIK_API_KEY"] = settings.api_key
    if settings.workspace:
        env["OPIK_WORKSPACE"] = settings.workspace
    where = f"{settings.url} workspace {settings.workspace_name!r}"
    return SuiteTracing(env, project, f"traces go to project {project!r} at {where}")


def run_trace_args(
    suite: str,
    item_id: str,
    run_index: int,
    commit: str | None,
    branch: str | None,
    suite_run_id: str,
) -> dict[str, Any]:
    """The SDK's `opik_args["trace"]`: tags to filter suite runs by, the same facts as metadata;
    `suite-run:<id>` links each trace to the recorded run (`suite show`, the platform's store)."""
    where = f"branch:{branch}" if branch else f"commit:{(commit or 'none')[:12]}"
    tags = [
        "opik-connect-suite",
        f"suite:{suite}",
        f"item:{item_id}",
        f"run:{run_index + 1}",
        f"suite-run:{suite_run_id}",
        where,
    ]
    metadata = {
        "opik_connect": {
            "suite": suite,
            "suite_run_id": suite_run_id,
            "item_id": item_id,
            "run": run_index + 1,
            "commit": commit,
            "branch": branch,
        }
    }
    return {"tags": tags, "metadata": metadata}
