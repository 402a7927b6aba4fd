"""Events tenants subscribe to: the catalogue of types, the subscription tables, and the recorder every producer
calls inside the transaction of the change that caused the event (core.subscriptions delivers them)."""
