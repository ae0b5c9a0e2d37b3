"""The test suite: unit (no I/O), integration (real Kafka and PostgreSQL), e2e (processes)."""
