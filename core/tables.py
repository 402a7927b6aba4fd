"""Every tenant table, so the metadata is whole wherever it is used: a foreign key from one domain's table to
another's (deliveries -> jobs, jobs -> inbound_events) resolves even in a process that imported only one."""
from core.connections.models import Connection
from core.events.models import Subscription, SubscriptionAttempt, SubscriptionMessage
from core.inbound.models import InboundEvent, PollCursor, RawDelivery
from core.jobs.models import Job, JobStep, RelatedRecord
from core.notify.models import Notification, NotificationSetting
from core.outbound.models import Delivery
from core.platform.models import AuditEntry, OutboxMessage, TenantIdempotencyRecord
from core.workflows.models import WorkflowSetting

TENANT_TABLES = tuple(model.__table__ for model in (
    AuditEntry, TenantIdempotencyRecord, OutboxMessage, Connection, InboundEvent, RawDelivery, PollCursor,
    WorkflowSetting, Job, JobStep, RelatedRecord, Notification, NotificationSetting, Delivery, Subscription,
    SubscriptionMessage, SubscriptionAttempt))
