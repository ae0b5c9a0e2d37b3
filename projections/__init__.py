"""The read side's writer: read models in PostgreSQL built from the event store.

`read_schema` declares the tables (`ddl` creates them, `upgrade` brings older ones up to
date), `appliers` turn events into rows, `projector` applies batches exactly once with
`tracking`, `run` is the long-running service, `rebuild` replays everything into a shadow
schema, and `lag` reads how far behind the read models are.
"""
