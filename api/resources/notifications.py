"""The tenant's notification log (`/v1/notifications`) and who is told what (`/v1/notification-settings`).

Both are ADMIN-only: the log and the settings hold the names and email addresses of the people told.
"""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import JsonBoolean, PageArgsSchema, newest_first_page, page_schema
from core.notify import service as notify
from core.notify import settings as notify_settings
from core.platform.validation import FullMatch
from notifications.novu import WORKFLOWS

blp = Blueprint("notifications", __name__, url_prefix="/v1",
                description="Notifications sent through Novu: the log, and who is told about what.")
USER_ID = r"^[A-Za-z0-9._@+-]{1,200}$"
TOPIC_KEY = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class NotificationSchema(ma.Schema):
    id = ma.fields.String()
    event = ma.fields.String()
    subject = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(notify.STATUSES)})
    transaction_id = ma.fields.String(metadata={"description": "Novu's transactionId; the same on every attempt."})
    recipients = ma.fields.Function(lambda n: n.request.get("to", []))
    attempts = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    sent_at = ma.fields.DateTime(allow_none=True)
    links = ma.fields.Method("_links")

    def _links(self, notification):
        return {"self": url_for("notifications.NotificationById", notification_id=str(notification.id))}


class NotificationDetailSchema(NotificationSchema):
    request = ma.fields.Dict(metadata={"description": "The body of POST /v1/events/trigger Novu receives "
                                                      "(or would have received, when skipped)."})


class NotificationQueryArgsSchema(PageArgsSchema):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(notify.STATUSES))
    event = ma.fields.String(load_default=None, validate=ma.validate.OneOf(WORKFLOWS))
    created_after = ma.fields.AwareDateTime(load_default=None)
    created_before = ma.fields.AwareDateTime(load_default=None)


NotificationPageSchema = page_schema(NotificationSchema, "NotificationPageSchema")


class NotifiedUserSchema(ma.Schema):
    id = ma.fields.String(required=True, validate=FullMatch(USER_ID, error="1–200 of A-Z a-z 0-9 . _ @ + -"))
    email = ma.fields.Email(load_default=None, validate=ma.validate.Length(max=320))
    name = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=200))


class EventSettingSchema(ma.Schema):
    enabled = JsonBoolean(required=True)
    admins = JsonBoolean(load_default=True, metadata={"description": "Tell the tenant's admins topic."})
    users = ma.fields.List(ma.fields.Nested(NotifiedUserSchema), load_default=list,
                           validate=ma.validate.Length(max=50))
    topics = ma.fields.List(ma.fields.String(validate=FullMatch(
        TOPIC_KEY, error="a topic key is 1–40 of a-z 0-9 _ -, starting with a letter or digit")),
        load_default=list, validate=ma.validate.Length(max=10),
        metadata={"description": "Extra Novu topics of this tenant (sent as zixly_<tenant>_<key>)."})

    @ma.post_load
    def _one_entry_per_user(self, data, **kwargs):
        """A user named twice is told once (the last entry wins): a rule the spec's array cannot state."""
        data["users"] = list({user.get("id"): user for user in data.get("users", [])}.values())
        return data


# One optional member per event type, so the spec says exactly which event names exist.
class NotificationEventsSchema(ma.Schema.from_dict(
        {event: ma.fields.Nested(EventSettingSchema) for event in notify_settings.EVENTS})):
    class Meta:
        openapi = {"minProperties": 1}  # a PUT names at least one event (checked below)


EventsSchema = NotificationEventsSchema


class NotificationSettingsSchema(ma.Schema):
    events = ma.fields.Nested(EventsSchema, required=True)


class NotificationSettingsUpdateSchema(NotificationSettingsSchema):
    @ma.validates("events")
    def _not_empty(self, events, **kwargs):
        if not events:
            raise ma.ValidationError("name at least one event")


@blp.route("/notifications")
class Notifications(MethodView):
    @access("ADMIN")
    @blp.arguments(NotificationQueryArgsSchema, location="query")
    @blp.response(200, NotificationPageSchema)
    def get(self, args):
        """List notifications, newest first (filters: status, event, created range)."""
        return newest_first_page(notify.list_notifications, args, "created_at")


@blp.route("/notifications/<string:notification_id>")
class NotificationById(MethodView):
    @access("ADMIN")
    @blp.response(200, NotificationDetailSchema)
    def get(self, notification_id):
        """One notification with the exact request sent to Novu."""
        return notify.get_notification(notification_id)


@blp.route("/notification-settings")
class NotificationSettings(MethodView):
    @access("ADMIN")
    @blp.response(200, NotificationSettingsSchema)
    def get(self):
        """Which events notify whom (every event type, defaults filled in)."""
        return {"events": notify_settings.get_settings()}

    @access("ADMIN")
    @blp.arguments(NotificationSettingsUpdateSchema)
    @blp.response(200, NotificationSettingsSchema)
    def put(self, data):
        """Replace the settings of the events named; events not named keep theirs."""
        return {"events": notify_settings.update_settings(data["events"], actor=g.actor)}
