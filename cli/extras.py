"""Which commands need the `server` extra, and a clear line when it is not installed.

A plain `pip install dspyops` is the light client: `send`, `watch`, `programs`,
`executions` and `schema` work with it. The commands that run or manage the service
(worker, projector, API, local stack, demo) need `pip install 'dspyops[server]'`;
without it they say so and which packages are missing, instead of an ImportError.
"""

from __future__ import annotations

import importlib.util
import sys

# Import names of the server extra's distributions that those commands load.
SERVER_MODULES = ("dspy", "faust", "eventsourcing", "psycopg", "fastapi", "uvicorn")
SERVER_COMMANDS = ("infra", "worker", "projector", "projections", "api", "dev", "demo")
INSTALL_HINT = "pip install 'dspyops[server]'"


def missing_server_modules() -> list[str]:
    """The server extra's modules that cannot be imported here (empty when installed)."""
    missing = []
    for name in SERVER_MODULES:
        if name in sys.modules:
            # Imported already (or set to None: blocked). Not find_spec: faust replaces
            # its module with a lazy one that has no __spec__, and find_spec then raises.
            found = sys.modules[name] is not None
        else:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
        if not found:
            missing.append(name)
    return missing


def needs_server_message(command: str, missing: list[str]) -> str:
    return (
        f"`dspyops {command}` needs the server extra ({INSTALL_HINT}); "
        f"not installed here: {', '.join(missing)}"
    )
