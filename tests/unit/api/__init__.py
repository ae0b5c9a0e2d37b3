"""Unit tests of dspyops.api: auth, pagination, views (no database)."""
