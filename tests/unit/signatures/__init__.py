"""Unit tests of dspyops.signatures: grammar, compile, errors, fuzzing."""
