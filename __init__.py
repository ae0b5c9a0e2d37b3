"""dspyops: the production home for DSPy programs, event-sourced, on Kafka and PostgreSQL.

The repository root is this package: its top-level folders install as `dspyops.events`,
`dspyops.aggregates`, ... (pyproject's `package-dir`). A plain install gives the light
client (`dspyops.client`) and the wire contract (`dspyops.events`); the `server` extra
adds the worker, projector, API and their dependencies. Start at docs/architecture.md.

Nothing is imported here on purpose: `import dspyops.client` must stay light.
"""
