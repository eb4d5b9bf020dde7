"""People and merchants with fixed roles, as the style guide asks.

``tenant_acme`` and ``tenant_globex`` are two merchants. Each has an agent whose email is
``li@example.com``, so a query that forgets the tenant returns the wrong person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.test import Client

from helpdesk import tenancy
from helpdesk.models import Membership, Role, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory

PASSWORD = "correct horse battery staple"


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
    user = UserFactory(
        username=username, email="li@example.com" if "li" in username else f"{username}@example.com"
    )
    return MembershipFactory(tenant=tenant, user=user, role=role)


@pytest.fixture
def agent_li(tenant_acme: Tenant):
    return _member(tenant_acme, "li.acme", Role.AGENT).user


@pytest.fixture
def globex_agent_li(tenant_globex: Tenant):
    return _member(tenant_globex, "li.globex", Role.AGENT).user


@pytest.fixture
def supervisor_wang(tenant_acme: Tenant):
    return _member(tenant_acme, "wang.acme", Role.SUPERVISOR).user


@pytest.fixture
def admin_zhao(tenant_acme: Tenant):
    return _member(tenant_acme, "zhao.acme", Role.ADMIN).user


@pytest.fixture
def acting_as() -> Iterator[Callable[[Tenant], object]]:
    """``with acting_as(tenant_acme): ...`` runs the block as that merchant."""
    yield tenancy.activate


@pytest.fixture
def in_acme(tenant_acme: Tenant) -> Iterator[Tenant]:
    with tenancy.activate(tenant_acme):
        yield tenant_acme


def login(user: object, language: str | None = "en") -> Client:
    """A signed-in browser. It reads English unless ``language=None`` (the merchant's own)."""
    client = Client()
    client.force_login(user)
    if language:
        client.cookies["django_language"] = language
    return client


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
