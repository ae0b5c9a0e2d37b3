"""The `dspyops` command: thin commands over the packages (local stack, worker, projector,
API, sending and watching commands, reads over HTTP, the demo). Each service's own loop
lives in its package; commands that need the server extra import it lazily and say so
when it is missing.
"""
