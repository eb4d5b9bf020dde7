"""People and merchants with fixed roles, as the style guide asks.

``tenant_acme`` and ``tenant_globex`` are two merchants, each with its own agent (``agent_li``,
``globex_agent_li``). One email is one account on the platform, so the same person working for
both is ``li_in_two_merchants``: one user, an agent at Acme and a supervisor at Globex, so a
query that forgets the tenant or the role returns the wrong data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.test import Client, TransactionTestCase
from django.utils import translation

from helpdesk import tenancy
from helpdesk.db.roles import connected_as_owner
from helpdesk.models import Membership, Role, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory

PASSWORD = "correct horse battery staple"

# The test database is created, migrated and flushed by the owner role (DATABASE_MIGRATE_URL),
# as in production; the tests themselves run as the app role (DATABASE_URL), which may only read
# and write rows. Without DATABASE_MIGRATE_URL everything runs as DATABASE_URL's role.
_logged_in_as_owner = contextlib.ExitStack()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None,
) -> Iterator[None]:
    _logged_in_as_owner.enter_context(connected_as_owner(connection))
    yield
    _logged_in_as_owner.close()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    _logged_in_as_owner.close()
    flush = TransactionTestCase._fixture_teardown

    def flush_as_owner(self: TransactionTestCase) -> None:
        # Emptying the tables between transactional tests is TRUNCATE: the owner's privilege.
        with connected_as_owner(connection):
            flush(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", flush_as_owner)
        yield
    _logged_in_as_owner.enter_context(connected_as_owner(connection))  # to drop the database


@pytest.fixture
def tenant_acme(db: None) -> Tenant:
    return TenantFactory(name="Acme 家电", slug="acme", default_currency="CNY")


@pytest.fixture
def tenant_globex(db: None) -> Tenant:
    return TenantFactory(
        name="Globex Outdoor",
        slug="globex",
        default_currency="USD",
        locale="en",
        time_zone="America/New_York",
        phone_region="US",
    )


def _member(tenant: Tenant, username: str, role: str) -> Membership:
    user = UserFactory(username=username, email=f"{username}@example.com")
    return MembershipFactory(tenant=tenant, user=user, role=role)


@pytest.fixture
def agent_li(tenant_acme: Tenant):
    return _member(tenant_acme, "li.acme", Role.AGENT).user


@pytest.fixture
def globex_agent_li(tenant_globex: Tenant):
    return _member(tenant_globex, "li.globex", Role.AGENT).user


@pytest.fixture
def li_in_two_merchants(tenant_acme: Tenant, tenant_globex: Tenant):
    """One person, ``li@example.com``, an agent at Acme and a supervisor at Globex."""
    li = UserFactory(username="li", email="li@example.com")
    MembershipFactory(tenant=tenant_acme, user=li, role=Role.AGENT)
    MembershipFactory(tenant=tenant_globex, user=li, role=Role.SUPERVISOR)
    return li


@pytest.fixture
def supervisor_wang(tenant_acme: Tenant):
    return _member(tenant_acme, "wang.acme", Role.SUPERVISOR).user


@pytest.fixture
def admin_zhao(tenant_acme: Tenant):
    return _member(tenant_acme, "zhao.acme", Role.ADMIN).user


@pytest.fixture
def owner_chen(tenant_acme: Tenant):
    return _member(tenant_acme, "chen.acme", Role.OWNER).user


@pytest.fixture
def acting_as() -> Iterator[Callable[[Tenant], object]]:
    """``with acting_as(tenant_acme): ...`` runs the block as that merchant."""
    yield tenancy.activate


@pytest.fixture
def in_acme(tenant_acme: Tenant) -> Iterator[Tenant]:
    with tenancy.activate(tenant_acme):
        yield tenant_acme


def acting(user: object, tenant: Tenant | None = None) -> object:
    """The person as services take them (``acting_agent``), in ``tenant`` or the active one."""
    from helpdesk.permissions import acting_agent_for

    return acting_agent_for(user, tenant or tenancy.require_tenant())


def login(user: object, language: str | None = "en") -> Client:
    """A signed-in browser. It reads English unless ``language=None`` (the merchant's own).

    A platform operator gets an authenticator app first, as every real one has: without it the
    helpdesk only shows them its setup page (tests/helpdesk/test_sign_in.py).
    """
    if getattr(user, "is_superuser", False):
        give_totp(user)
    client = Client()
    client.force_login(user)
    if language:
        client.cookies["django_language"] = language
    return client


def give_totp(user: object) -> str:
    """Set up an authenticator app for ``user`` (once); returns its secret."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from allauth.mfa.utils import decrypt

    existing = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if existing is not None:
        return decrypt(existing.data["secret"])
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Rate-limit counters and used TOTP codes live in the cache (Redis in the suite, where they
    outlive a test run): every test starts with none, so sign-ins in one test never throttle
    another."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # Only the cache's own keys: the broker and the channel layer share this Redis.
        client = backend._cache.get_client(write=True)
        keys = list(client.scan_iter(f"{backend.key_prefix}:*"))
        if keys:
            client.delete(*keys)
    else:
        backend.clear()


@pytest.fixture(autouse=True)
def _language_of_its_own() -> Iterator[None]:
    """Every test starts in the default language: a request handled in Chinese (the member's
    language middleware activates it for the thread) must not leave a later test reading
    Chinese where it expects English, as it did when two files ran in a certain order."""
    yield
    translation.deactivate()


@pytest.fixture
def allow_egress(settings) -> Callable[[str, int], None]:
    """``allow_egress("127.0.0.1", port)`` lets the egress guard through to a test's own
    server, as an operator would with HELPDESK_EGRESS_ALLOW; everything else stays refused."""
    settings.HELPDESK_EGRESS_ALLOW = []

    def allow(host: str, port: int) -> None:
        settings.HELPDESK_EGRESS_ALLOW = [*settings.HELPDESK_EGRESS_ALLOW, f"{host}:{port}"]

    return allow


@pytest.fixture
def acme_mailbox(in_acme):
    from channels_in.models import ChannelAccount, Mailbox

    account = ChannelAccount.objects.create(kind="email", name="Acme support")
    return Mailbox.objects.create(
        account=account, address="support@acme.example", from_name="Acme 家电"
    )


@pytest.fixture
def acme_email(acme_mailbox):
    return acme_mailbox.account
