"""Owners and admins arrange groups under /settings/groups/, and new tickets land in the default."""

from __future__ import annotations

import pytest
from django.test import Client

from helpdesk import tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.permissions import acting_agent_for
from tests.channels_in.mails import customer_mail
from tests.conftest import login
from tickets import groups
from tickets.models import AuditEvent, Group, GroupMember, Ticket

pytestmark = pytest.mark.django_db


def make_group(tenant, name: str, *, is_default: bool = False) -> Group:
    with tenancy.activate(tenant):
        return Group.objects.create(name=name, is_default=is_default)


def group_names(tenant) -> dict[str, bool]:
    with tenancy.activate(tenant):
        return dict(Group.objects.values_list("name", "is_default"))


def actions(tenant) -> list[str]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_create_or_change_groups_and_nothing_is_written(
    person, request, tenant_acme
):
    presales = make_group(tenant_acme, "Pre-sales 售前")
    client = login(request.getfixturevalue(person))
    assert client.get("/settings/groups/").status_code == 403
    assert client.post("/settings/groups/new/", {"name": "Sneaky"}).status_code == 403
    assert client.post(f"/settings/groups/{presales.pk}/default/").status_code == 403
    response = client.post(f"/settings/groups/{presales.pk}/rename/", {"name": "Renamed"})
    assert response.status_code == 403
    assert group_names(tenant_acme) == {"Pre-sales 售前": False}
    assert actions(tenant_acme) == []


def test_admin_creates_a_group_and_renames_it(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    response = client.post("/settings/groups/new/", {"name": "  After-sales   售后 "})
    with tenancy.activate(tenant_acme):
        created = Group.objects.get(name="After-sales 售后")
    assert response.url == f"/settings/groups/{created.pk}/"
    client.post(f"/settings/groups/{created.pk}/rename/", {"name": "Returns 退货"})
    assert group_names(tenant_acme) == {"Returns 退货": False}
    assert "Returns 退货" in client.get("/settings/groups/").content.decode()
    assert actions(tenant_acme) == ["group.created", "group.renamed"]


def test_a_group_name_already_taken_is_refused_in_words(admin_zhao, tenant_acme):
    make_group(tenant_acme, "VIP")
    response = login(admin_zhao).post("/settings/groups/new/", {"name": "VIP"})
    assert response.status_code == 400
    assert response.json()["message"] == "There is already a group called VIP"
    assert group_names(tenant_acme) == {"VIP": False}


def test_setting_the_default_group_leaves_exactly_one_default(owner_chen, tenant_acme):
    make_group(tenant_acme, "General", is_default=True)
    vip = make_group(tenant_acme, "VIP")
    client = login(owner_chen)
    response = client.post(f"/settings/groups/{vip.pk}/default/", {"back": "list"}, follow=True)
    assert "New tickets now go to VIP." in response.content.decode()
    assert group_names(tenant_acme) == {"General": False, "VIP": True}
    with tenancy.activate(tenant_acme):
        [event] = AuditEvent.objects.filter(action="group.default_set")
    assert event.changes == {"default_group": ["General", "VIP"]}
    # Choosing it again changes nothing and writes nothing.
    client.post(f"/settings/groups/{vip.pk}/default/")
    assert actions(tenant_acme).count("group.default_set") == 1


def test_a_new_customer_mail_lands_in_the_default_group_chosen_in_settings(
    admin_zhao, acme_email, tenant_acme, django_capture_on_commit_callbacks
):
    make_group(tenant_acme, "General", is_default=True)
    vip = make_group(tenant_acme, "VIP")
    login(admin_zhao).post(f"/settings/groups/{vip.pk}/default/")
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            f"/inbound/acme/email/{acme_email.pk}/",
            customer_mail(subject="我的订单呢"),
            content_type="message/rfc822",
            HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
        )
    assert response.status_code == 202
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(subject="我的订单呢").group == vip


def test_admin_adds_and_removes_a_group_member(admin_zhao, agent_li, tenant_acme):
    vip = make_group(tenant_acme, "VIP")
    client = login(admin_zhao)
    client.post(f"/settings/groups/{vip.pk}/members/", {"user": agent_li.pk})
    with tenancy.activate(tenant_acme):
        assert list(GroupMember.objects.values_list("user__username", flat=True)) == ["li.acme"]
    page = client.get(f"/settings/groups/{vip.pk}/").content.decode()
    assert f"/settings/groups/{vip.pk}/members/{agent_li.pk}/remove/" in page
    client.post(f"/settings/groups/{vip.pk}/members/{agent_li.pk}/remove/")
    with tenancy.activate(tenant_acme):
        assert not GroupMember.objects.exists()
    assert actions(tenant_acme) == ["group.member_added", "group.member_removed"]


def test_someone_from_another_merchant_cannot_be_put_in_a_group(
    admin_zhao, globex_agent_li, tenant_acme
):
    vip = make_group(tenant_acme, "VIP")
    response = login(admin_zhao).post(
        f"/settings/groups/{vip.pk}/members/", {"user": globex_agent_li.pk}
    )
    assert response.status_code == 404
    with tenancy.activate(tenant_acme):
        assert not GroupMember.objects.exists()


def test_another_merchants_group_ids_answer_404_and_stay_untouched(
    admin_zhao, agent_li, tenant_globex
):
    outdoor = make_group(tenant_globex, "Outdoor")
    client = login(admin_zhao)
    assert client.get(f"/settings/groups/{outdoor.pk}/").status_code == 404
    assert client.post(f"/settings/groups/{outdoor.pk}/default/").status_code == 404
    assert client.post(f"/settings/groups/{outdoor.pk}/rename/", {"name": "x"}).status_code == 404
    assert (
        client.post(f"/settings/groups/{outdoor.pk}/members/", {"user": agent_li.pk}).status_code
        == 404
    )
    assert group_names(tenant_globex) == {"Outdoor": False}


def test_the_group_services_refuse_an_agent_before_writing(agent_li, tenant_acme):
    vip = make_group(tenant_acme, "VIP")
    with tenancy.activate(tenant_acme):
        acting = acting_agent_for(agent_li, tenant_acme)
        with pytest.raises(PermissionDenied):
            groups.create_group(acting_agent=acting, name="New")
        with pytest.raises(PermissionDenied):
            groups.set_default_group(acting_agent=acting, group=vip)
        with pytest.raises(PermissionDenied):
            groups.add_group_member(acting_agent=acting, group=vip, user=agent_li)
    assert group_names(tenant_acme) == {"VIP": False}
    assert actions(tenant_acme) == []
