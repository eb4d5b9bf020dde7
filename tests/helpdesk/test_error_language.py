"""Errors read in the person's language: a refused action, a bad value and the error pages show
Chinese text inside the Chinese interface."""

from __future__ import annotations

import pytest
from django.utils import translation

from helpdesk.errors import BadInput
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import IdentityKind

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _default_language_afterwards():
    """A Chinese page leaves its language active in this thread: the next test starts in the
    site's default, as a new request would."""
    yield
    translation.deactivate()


PAGE = {"HTTP_ACCEPT": "text/html"}


def test_a_bad_status_is_refused_in_chinese(agent_li, in_acme):
    customer = CustomerFactory(name="李伟")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="漏水", channel="email"
    )
    response = login(agent_li, language="zh-hans").post(
        f"/tickets/{ticket.number}/status/", {"status": "bogus"}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "未知状态 bogus"


def test_a_bad_phone_number_is_refused_in_the_readers_language(in_acme):
    with translation.override("zh-hans"), pytest.raises(BadInput) as refused:
        services.normalise_identity(kind=IdentityKind.PHONE, value="12")
    assert str(refused.value.message) == "12 不是有效的电话号码"
    with translation.override("en"), pytest.raises(BadInput) as refused:
        services.normalise_identity(kind=IdentityKind.PHONE, value="12")
    assert str(refused.value.message) == "12 is not a phone number"


def test_a_missing_page_says_so_in_chinese(agent_li):
    response = login(agent_li, language="zh-hans").get("/tickets/999999/", **PAGE)
    assert response.status_code == 404
    page = response.content.decode()
    assert "未找到" in page
    assert "Not Found" not in page
