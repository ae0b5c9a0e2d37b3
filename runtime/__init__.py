"""Running DSPy for dspyops: LM profiles, module construction, execution, scoring, runs.

Nothing is re-exported here: import from the defining module
(``dspyops.runtime.executor``, ``.trace``, ``.traced``, ``.modules``, ``.programs``,
``.pipeline``, ``.plugins``, ``.plugin_context``, ``.tools``, ``.tools_builtin``,
``.arithmetic``, ``.retrieval``, ``.profiles``, ``.offline``, ``.evaluate``,
``.scoring``, ``.field_scores``, ``.optimizers``, ``.optimize``, ``.run_state``,
``.progress_bars``, ``.failures``, ``.lm_errors``, ``.redaction``), so importing one of
them does not import every other.

Imports dspy, pydantic, the standard library, ``settings`` and ``signatures`` (to build
a program's DSPy classes from its stored signature text). ``.retrieval`` (BM25 over a
corpus version and its index cache) imports bm25s and numpy instead, and no dspy.
"""
