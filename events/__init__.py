"""The wire contract: envelope, command and result payloads, topics, codec, schemas."""
