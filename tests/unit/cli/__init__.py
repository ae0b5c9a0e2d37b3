"""Unit tests of dspyops.cli: errors, extras, README, schema, services, compose, infra."""
