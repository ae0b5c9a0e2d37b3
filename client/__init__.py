"""The Python client for services that talk to dspyops over Kafka.

async with DspyopsClient("127.0.0.1:9092") as client:
    reply = await client.send(ExecuteProgram(program_id="qa", inputs={...}))
    answer = reply.expect(ExecutionSucceeded).outputs["answer"]
"""

from dspyops.client.client import DspyopsClient
from dspyops.client.errors import (
    CommandError,
    CommandFailedError,
    CommandRejectedError,
    CommandTimeoutError,
    KafkaRefusedError,
    TopicsMissingError,
)
from dspyops.client.replies import Reply
from dspyops.client.security import KafkaSecurity

__all__ = [
    "CommandError",
    "CommandFailedError",
    "CommandRejectedError",
    "CommandTimeoutError",
    "DspyopsClient",
    "KafkaRefusedError",
    "KafkaSecurity",
    "Reply",
    "TopicsMissingError",
]
