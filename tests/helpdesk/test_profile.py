"""Each person's profile: the language they choose is theirs at the next sign-in, a new member
reads their merchant's language, and "My profile" edits their own name, language and signature
(audited) and nobody else's."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from helpdesk import tenancy
from helpdesk.models import Membership
from tests.conftest import PASSWORD, login
from tickets.audit import AuditKind
from tickets.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _default_language_afterwards():
    """A Chinese page leaves its language active in this thread: the next test starts in the
    site's default, as a new request would."""
    yield
    translation.deactivate()


HTML = {"HTTP_ACCEPT": "text/html"}


def _sign_in(client: Client, username: str) -> None:
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content


def _page_language(client: Client, path: str = "/tickets/") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response["Content-Language"]


def _profile_events(tenant: object) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=AuditKind.MEMBER_PROFILE_CHANGED))


def _membership(user: object, tenant: object) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant)


def test_a_new_member_of_a_chinese_merchant_reads_chinese(agent_li):
    client = Client()
    _sign_in(client, "li.acme")
    assert _page_language(client) == "zh-hans"
    assert "工单" in client.get("/tickets/").content.decode()


def test_the_language_chosen_is_kept_at_the_next_sign_in(agent_li, tenant_acme):
    client = Client()
    _sign_in(client, "li.acme")
    client.post("/i18n/setlang/", {"language": "en", "next": "/tickets/"})
    assert _membership(agent_li, tenant_acme).language == "en"
    client.post("/logout/")

    elsewhere = Client()  # another browser: no language cookie
    _sign_in(elsewhere, "li.acme")
    assert _page_language(elsewhere) == "en"
    [event] = _profile_events(tenant_acme)
    assert (event.actor, event.changes["language"]) == (agent_li, ["", "en"])


def test_a_stored_choice_wins_over_a_cookie_left_by_someone_else(agent_li, tenant_acme):
    Membership.objects.filter(user=agent_li).update(language="en")
    client = Client()
    client.cookies["django_language"] = "zh-hans"  # a colleague used this browser before
    _sign_in(client, "li.acme")
    assert _page_language(client) == "en"


def test_without_a_stored_choice_the_cookie_still_decides(agent_li):
    assert _page_language(login(agent_li, language="en")) == "en"
    assert _page_language(login(agent_li, language="zh-hans")) == "zh-hans"


def test_a_choice_in_one_merchant_leaves_the_other_alone(agent_li, tenant_acme, tenant_globex):
    from tests.factories import MembershipFactory

    MembershipFactory(tenant=tenant_globex, user=agent_li)
    client = login(agent_li, language=None)
    client.post("/i18n/setlang/", {"language": "en", "next": "/tickets/"})
    assert _membership(agent_li, tenant_acme).language == "en"
    assert _membership(agent_li, tenant_globex).language == ""


def test_a_member_edits_their_own_profile(agent_li, tenant_acme):
    client = login(agent_li)
    page = client.get("/profile/").content.decode()
    assert 'href="/profile/"' in page  # the header's name links here
    response = client.post(
        "/profile/",
        {"display_name": "  李丽  ", "language": "zh-hans", "signature": "李丽\r\nAcme 售后"},
        follow=True,
    )
    assert response.status_code == 200
    assert "资料已保存" in response.content.decode()
    membership = _membership(agent_li, tenant_acme)
    assert (membership.display_name, membership.language, membership.signature) == (
        "李丽",
        "zh-hans",
        "李丽\nAcme 售后",
    )
    assert "李丽" in client.get("/tickets/").content.decode()  # the header names her
    [event] = _profile_events(tenant_acme)
    assert event.object_id == str(membership.pk)
    assert set(event.changes) == {"display_name", "language", "signature", "details"}


def test_saving_an_unchanged_profile_writes_nothing(agent_li, tenant_acme):
    client = login(agent_li)
    response = client.post("/profile/", {"display_name": "", "language": "", "signature": ""})
    assert response.status_code == 302
    assert _profile_events(tenant_acme) == []


def test_the_merchants_default_language_is_a_choice(agent_li, tenant_acme):
    Membership.objects.filter(user=agent_li).update(language="en")
    client = login(agent_li, language=None)
    assert _page_language(client) == "en"
    client.post("/profile/", {"display_name": "", "language": "", "signature": ""})
    assert _membership(agent_li, tenant_acme).language == ""
    assert _page_language(client) == "zh-hans"


def test_bad_input_is_a_form_error_not_a_500(agent_li, tenant_acme):
    client = login(agent_li)
    response = client.post(
        "/profile/", {"display_name": "x" * 500, "language": "klingon", "signature": ""}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Select a valid choice" in page
    assert "at most 120 characters" in page
    assert _membership(agent_li, tenant_acme).display_name == ""


def test_the_profile_edits_only_the_signed_in_persons_own(agent_li, supervisor_wang, tenant_acme):
    client = login(agent_li)
    client.post(
        "/profile/",
        {"display_name": "Li", "language": "", "signature": "", "user": supervisor_wang.pk},
    )
    assert _membership(supervisor_wang, tenant_acme).display_name == ""
    assert _membership(agent_li, tenant_acme).display_name == "Li"


def test_signed_out_visitors_are_sent_to_sign_in(db):
    response = Client().get("/profile/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]
