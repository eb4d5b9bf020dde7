"""The tenancy core: which merchant the running code acts for, and the walls around it.

The active tenant lives in a ContextVar set only here: by the web middleware, by API
authentication, by the Celery task base and by Channels consumers. Tenant-owned models use a
manager that fails closed (no active tenant -> ``TenantNotActive``). On PostgreSQL the database
backend (``helpdesk.db``) gives every statement the active tenant as ``app.tenant_id``, only ever
transaction-locally, and row-level security policies restrict every tenant-owned table to it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import models, transaction
from django.utils import translation

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from helpdesk.models import Membership, Tenant

logger = logging.getLogger(__name__)

_active_tenant: ContextVar[Tenant | None] = ContextVar("active_tenant", default=None)

SESSION_KEY = "active_tenant_id"


class TenantNotActive(RuntimeError):
    """Tenant data was queried with no active tenant: a bug, never a user error."""


class CrossTenantReference(ValueError):
    """A row was pointed at another tenant's row: a bug, never a user error."""


def current_tenant() -> Tenant | None:
    return _active_tenant.get()


def require_tenant() -> Tenant:
    tenant = _active_tenant.get()
    if tenant is None:
        raise TenantNotActive(
            "No tenant is active. Wrap the code in tenancy.activate(tenant) or, for platform "
            "code, use the model's all_tenants manager explicitly."
        )
    return tenant


def rls_setting() -> str:
    """The value PostgreSQL's ``app.tenant_id`` must hold right now ('' = no rows visible)."""
    tenant = _active_tenant.get()
    return str(tenant.pk) if tenant is not None else ""


@contextlib.contextmanager
def activate(tenant: Tenant) -> Iterator[Tenant]:
    """Act for ``tenant`` inside the block; the previous tenant (or none) is restored after."""
    if tenant is None or tenant.pk is None:
        raise TenantNotActive("activate() needs a saved tenant")
    token = _active_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _active_tenant.reset(token)


@contextlib.contextmanager
def deactivate() -> Iterator[None]:
    """Run a block with no tenant active (platform work such as listing tenants)."""
    token = _active_tenant.set(None)
    try:
        yield
    finally:
        _active_tenant.reset(token)


class ActiveTenantId(models.Expression):
    """The active tenant's id, read when the SQL is compiled; with no tenant active it raises.

    Filtering on it instead of on a value means a queryset built before any tenant is active
    (a form field's choices defined at import time) is still bound to the tenant of the moment
    it runs, and never to nobody.
    """

    output_field = models.BigIntegerField()

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[int]]:
        return "%s", [require_tenant().pk]


class TenantScopedManager(models.Manager):
    """Default manager of tenant-owned models: the active tenant's rows, or an error."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(tenant_id=ActiveTenantId())


class TenantOwned(models.Model):
    """Abstract base for every tenant-owned table: the tenant column and the fail-closed manager.

    Subclasses get row-level security on PostgreSQL automatically, and each of their foreign
    keys to another tenant-owned model a same-tenant composite key (see ``helpdesk.rls``).
    """

    tenant = models.ForeignKey("helpdesk.Tenant", on_delete=models.CASCADE, related_name="+")

    # Append-only tables (the audit log) get SELECT and INSERT policies only.
    rls_append_only = False

    objects = TenantScopedManager()
    # Platform code that really means every tenant says so; RLS still applies on PostgreSQL.
    all_tenants = models.Manager()  # noqa: DJ012

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        active = require_tenant()
        if self.tenant_id is None:
            self.tenant = active
        elif self.tenant_id != active.pk:
            raise TenantNotActive(
                f"Refusing to save a {type(self).__name__} of tenant {self.tenant_id} "
                f"while tenant {active.pk} is active"
            )
        self._refuse_other_tenants_rows()
        super().save(*args, **kwargs)

    def _refuse_other_tenants_rows(self) -> None:
        """Refuse a related object of another tenant (the database refuses a bare id too)."""
        for field in self._meta.concrete_fields:
            if (
                isinstance(field, models.ForeignKey)
                and issubclass(field.related_model, TenantOwned)
                and field.is_cached(self)
            ):
                related = field.get_cached_value(self)
                if related is not None and related.tenant_id != self.tenant_id:
                    raise CrossTenantReference(
                        f"Refusing to point {type(self).__name__}.{field.name} of tenant "
                        f"{self.tenant_id} at a {type(related).__name__} of tenant "
                        f"{related.tenant_id}"
                    )


def tenants_of(user: Any) -> models.QuerySet:
    """The tenants a user may act for: their memberships, or every tenant for a superuser."""
    from helpdesk.models import Tenant

    if not user.is_authenticated:
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.filter(is_active=True)
    return Tenant.objects.filter(memberships__user=user, is_active=True)


# The merchant switcher lists at most this many of a person's merchants.
SWITCHABLE_SHOWN = 100


def tenant_for_session(request: HttpRequest) -> Tenant | None:
    """The tenant a signed-in user acts for: the one they chose, else their first.

    A member's merchants are read once with their memberships, in the switcher's order, and
    kept on the request for ``tenant_context`` and ``membership_of``; a platform operator's
    (every merchant) are looked up one by one."""
    from helpdesk.models import Membership

    chosen = request.session.get(SESSION_KEY)
    if not request.user.is_superuser:
        memberships = list(
            Membership.objects.filter(user=request.user, tenant__is_active=True)
            .select_related("tenant")
            .order_by("tenant__name", "tenant__pk")[:SWITCHABLE_SHOWN]
        )
        if len(memberships) < SWITCHABLE_SHOWN:
            request._switchable_tenants = [m.tenant for m in memberships]
            picked = [m for m in memberships if m.tenant_id == chosen] or sorted(
                memberships, key=lambda m: m.tenant_id
            )[:1]
            if not picked:
                return None
            membership = picked[0]
            membership.user = request.user
            request._session_membership = membership
            return membership.tenant
    tenants = tenants_of(request.user).order_by("pk")
    if chosen is not None:
        tenant = tenants.filter(pk=chosen).first()
        if tenant is not None:
            return tenant
    return tenants.first()


class TenantMiddleware:
    """Activate the signed-in user's tenant for the request; clear it when the request ends."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = tenant_for_session(request) if request.user.is_authenticated else None
        request.tenant = tenant
        if tenant is None:
            with deactivate():
                return self.get_response(request)
        if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES and tenant.locale:
            # An agent who never picked a language works in their merchant's language.
            translation.activate(tenant.locale)
            request.LANGUAGE_CODE = translation.get_language()
        with activate(tenant):
            return self.get_response(request)


def activate_for_request(request: HttpRequest, tenant: Tenant) -> None:
    """Act for ``tenant`` for the rest of this request (API authentication calls this).

    Only valid inside ``TenantMiddleware``: its context restores the previous value when the
    request ends, so the tenant never outlives the request.
    """
    _active_tenant.set(tenant)
    request.tenant = tenant


def membership_of(request: HttpRequest) -> Membership | None:
    """The signed-in user's membership in the active tenant (looked up once per request)."""
    if not hasattr(request, "_membership"):
        tenant = getattr(request, "tenant", None)
        known = getattr(request, "_session_membership", None)
        if known is not None and tenant is not None and known.tenant_id == tenant.pk:
            request._membership = known  # read with the merchant by tenant_for_session
            return known
        request._membership = (
            tenant.memberships.filter(user=request.user).first()
            if tenant is not None and request.user.is_authenticated
            else None
        )
    return request._membership


def tenant_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the active tenant, the user's place in it, the merchants to switch to."""
    switchable = getattr(request, "_switchable_tenants", None)
    if switchable is None and request.user.is_authenticated:
        switchable = list(tenants_of(request.user).order_by("name", "pk")[:SWITCHABLE_SHOWN])
    return {
        "tenant": getattr(request, "tenant", None),
        "membership": membership_of(request),
        "switchable_tenants": switchable if switchable and len(switchable) > 1 else [],
    }


class TenantTask(DjangoTask):
    """Celery task base: the first argument is the tenant id, activated for the task's run.

    The run is not wrapped in one transaction: tasks keep their own boundaries (the inbound
    pipeline claims a payload in one transaction and records a failure in another; delivery
    commits "sending" before it talks to the mail server). Every statement outside them is a
    transaction of its own that carries the tenant (``helpdesk.db``).

    Work is handed over with ``delay_on_commit`` (Celery's Django task): after the caller's
    transaction commits, never before, so a worker never looks for a row it cannot see yet.
    A broker that is down at that moment must not turn a committed action into an error page:
    the hand-over is logged and ``enqueue_failed`` is told, so the task can leave a trace its
    sweep finds (the inbound pipeline marks the payload as never queued).
    """

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        transaction.on_commit(functools.partial(self._hand_over, args, kwargs))

    def _hand_over(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.delay(*args, **kwargs)
        except Exception as exc:  # kombu/redis errors: the broker is unreachable
            logger.warning("%s%r not queued: %s", self.name, args, exc)
            self.enqueue_failed(*args, **kwargs)

    def enqueue_failed(self, *args: Any, **kwargs: Any) -> None:
        """Called when handing the task to the broker failed; by default nothing more."""

    def __call__(self, tenant_id: int, *args: Any, **kwargs: Any) -> Any:
        from helpdesk.models import Tenant

        tenant = Tenant.objects.get(pk=tenant_id)
        with activate(tenant):
            return super().__call__(tenant_id, *args, **kwargs)


def activate_for_scope(scope: dict[str, Any]) -> Tenant | None:
    """For Channels consumers: the tenant of the scope's user, read in a transaction of its own.

    Sync: call it through ``database_sync_to_async``, which closes the connection afterwards, so
    an idle socket holds no database connection.
    """
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None
    session = scope.get("session") or {}
    with transaction.atomic():
        tenants = tenants_of(user).order_by("pk")
        chosen = session.get(SESSION_KEY)
        tenant = tenants.filter(pk=chosen).first() if chosen is not None else None
        return tenant or tenants.first()
