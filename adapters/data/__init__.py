"""The agent's conversations: the store, the chat format, the samplers and the demo world."""

from adapters.data.conversations import (
    Conversation,
    IngestError,
    IngestReport,
    Message,
    ingest,
    load,
    new_since,
)
from adapters.data.sampling import data_delta_hash, replay_buffer, sample

__all__ = [
    "Conversation",
    "IngestError",
    "IngestReport",
    "Message",
    "data_delta_hash",
    "ingest",
    "load",
    "new_since",
    "replay_buffer",
    "sample",
]
