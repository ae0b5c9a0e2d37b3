"""Unit tests of dspyops.runtime: executor, modules, profiles, optimizers, runs."""
