"""`dspyops api`: the read-only HTTP API over the projections, served by uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from dspyops.cli.log_options import LogFormatOpt, LogLevelOpt, configure
from dspyops.settings import get_settings


def api(
    host: Annotated[str | None, typer.Option(help="Default: DSPYOPS_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: DSPYOPS_API_PORT.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="uvicorn worker processes. Default: DSPYOPS_API_WORKERS."),
    ] = None,
    log_level: LogLevelOpt = "info",
    log_format: LogFormatOpt = "console",
) -> None:
    """Serve the read-only query API (OpenAPI at /docs)."""
    settings = get_settings()
    uvicorn.run(
        "dspyops.api.main:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_config=configure(log_format, log_level),
        # Access lines cost more than a read query; request counts are on /metrics.
        access_log=False,
    )
