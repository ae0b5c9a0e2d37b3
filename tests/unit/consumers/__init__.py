"""Unit tests of dspyops.consumers: processing, batching, jobs, log redaction."""
