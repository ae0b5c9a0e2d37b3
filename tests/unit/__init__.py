"""Unit tests: fast, without Kafka or PostgreSQL (fakes where the unit is pure logic)."""
