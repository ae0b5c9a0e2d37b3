"""Integration tests against the real Kafka broker and PostgreSQL (`dspyops infra up`)."""
