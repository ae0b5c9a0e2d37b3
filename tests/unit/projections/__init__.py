"""Unit tests of dspyops.projections: dispatch, appliers, read schema, the loop."""
