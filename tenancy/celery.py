"""Celery that carries the tenant: a header added at publish from the context, restored around the task.

Every publish path (delay, apply_async, signatures, retries, send_task by name) goes through
`Celery.send_task`, so that is where the header is added and where a tenant task without a tenant is
refused. Tasks named `zixly.fleet.*` (and Celery's own) are the only ones that run outside a tenant.
"""
from __future__ import annotations

from celery import Celery, Task

from tenancy.context import NoTenantContext, current_tenant_or_none, tenant_context

HEADER = "zixly_tenant"
UNSCOPED_PREFIXES = ("zixly.fleet.", "celery.")


class TenantUnavailable(RuntimeError):
    """The task's tenant is unknown, suspended or archived: the task refuses to run."""


def is_tenant_scoped(name: str) -> bool:
    return not name.startswith(UNSCOPED_PREFIXES)


class TenantTask(Task):
    abstract = True

    def __call__(self, *args, **kwargs):
        if not is_tenant_scoped(self.name):
            return super().__call__(*args, **kwargs)
        slug = getattr(self.request, HEADER, None) or (self.request.headers or {}).get(HEADER)
        current = current_tenant_or_none()
        if slug is None:
            if current is None:
                raise NoTenantContext(f"task {self.name} ran without a tenant")
            return super().__call__(*args, **kwargs)
        tenant = self.app.load_tenant(slug)
        if tenant is None or tenant.status != "active":
            state = "unknown" if tenant is None else tenant.status
            raise TenantUnavailable(f"task {self.name} refused: tenant {slug!r} is {state}")
        with tenant_context(tenant):
            return super().__call__(*args, **kwargs)


class TenantCelery(Celery):
    task_cls = TenantTask

    def __init__(self, *args, load_tenant=None, **kwargs):
        kwargs.setdefault("task_cls", TenantTask)
        super().__init__(*args, **kwargs)
        self.load_tenant = load_tenant

    def send_task(self, name, args=None, kwargs=None, **options):
        tenant = current_tenant_or_none()
        headers = dict(options.pop("headers", None) or {})
        if is_tenant_scoped(name):
            if tenant is None:
                raise NoTenantContext(f"task {name} is tenant-scoped: publish it inside a tenant context")
            headers[HEADER] = tenant.slug
        else:
            headers.pop(HEADER, None)
        return super().send_task(name, args, kwargs, headers=headers, **options)
