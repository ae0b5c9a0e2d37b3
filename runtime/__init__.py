"""Running DSPy for dspyops: LM profiles, module construction, execution, scoring, runs.

Nothing is re-exported here: import from the defining module
(``dspyops.runtime.executor``, ``.modules``, ``.profiles``, ``.offline``, ``.evaluate``,
``.scoring``, ``.field_scores``, ``.optimizers``, ``.optimize``, ``.progress_bars``,
``.lm_errors``, ``.redaction``),
so importing one of them does not import every other.

Imports only dspy, pydantic, the standard library and ``settings``; signatures are
passed in as ``type[dspy.Signature]``. ``.retrieval`` (BM25 over a corpus version and
its index cache) imports bm25s and numpy instead, and no dspy.
"""
