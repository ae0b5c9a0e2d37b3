"""Unit tests of dspyops.events: the codec, text rule, schemas, contract and fuzzing."""
