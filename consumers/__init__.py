"""The worker: faust agents read the command topics, apply each command through the one
command table (`aggregates.app.handle`), run the plans of long-running commands
(`executions`; `runs` for optimizations; `evaluations`) and publish one terminal result
per command; the outbox relay (`relay`) publishes every stored event to the events
topic. `worker` composes them.
"""
