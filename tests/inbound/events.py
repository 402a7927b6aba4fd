"""Events made directly in a test, as the inbox processor makes them from kept deliveries (inbox.add_events), with
their jobs' tasks published after the commit."""
from core.inbound import inbox
from core.platform import outbox
from tenancy.db import tenant_autocommit


def record_events(*, provider: str, connection_id, events, headers: dict, raw_body: bytes | None) -> list:
    with tenant_autocommit() as connection:
        results, messages = inbox.add_events(connection, provider=provider, connection_id=connection_id,
                                             events=events, headers=headers, raw_body=raw_body)
    outbox.publish(messages)
    return results
