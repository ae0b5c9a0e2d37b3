"""Unit tests of dspyops.aggregates: the aggregates and the application service."""
