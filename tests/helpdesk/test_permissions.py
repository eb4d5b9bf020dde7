"""Roles inside a merchant: each rule from both sides, allowed and refused with nothing written.

Acme's people: ``agent_li`` works the after-sales group, ``supervisor_wang``, ``admin_zhao`` and
``owner_chen``. Acme has two groups, after-sales (Li's) and pre-sales (not Li's).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db.models import Model

from channels_in import outbound, pipeline
from channels_in import services as channel_services
from channels_in.base import Envelope
from channels_in.models import RawInbound
from helpdesk import tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.models import Membership, Role, Tenant
from helpdesk.permissions import (
    SYSTEM,
    ActingAgent,
    Capability,
    acting_agent_for,
    can_work_ticket,
    require,
)
from tests.channels_in.mails import customer_mail
from tests.conftest import acting, login
from tests.factories import CustomerFactory, OrderFactory
from tickets import services
from tickets.models import (
    AuditEvent,
    CustomerIdentity,
    Group,
    GroupMember,
    Message,
    Tag,
    Ticket,
    TicketTag,
)

pytestmark = pytest.mark.django_db

C = Capability

# The rule table in the merchant's words, written out here rather than read from RULES, so a
# change to RULES that nobody meant fails this test.
AGENT_MAY = {C.WORK_TICKETS}
SUPERVISOR_MAY = AGENT_MAY | {C.WORK_ALL_GROUPS, C.REASSIGN, C.SUPERVISE}
ADMIN_MAY = SUPERVISOR_MAY | {
    C.MANAGE_CHANNELS,
    C.MANAGE_GROUPS,
    C.MANAGE_MEMBERS,
    C.MANAGE_API_KEYS,
    C.READ_AUDIT_LOG,
    C.MANAGE_EMPOWERMENT,
    C.IMPORT_DATA,
}
OWNER_MAY = ADMIN_MAY | {C.MANAGE_MERCHANT}
EXPECTED = {
    Role.AGENT: AGENT_MAY,
    Role.SUPERVISOR: SUPERVISOR_MAY,
    Role.ADMIN: ADMIN_MAY,
    Role.OWNER: OWNER_MAY,
}
CASES = [(role, capability) for role in Role.values for capability in Capability]


@pytest.mark.parametrize(
    ("role", "capability"), CASES, ids=[f"{role}-{cap.value}" for role, cap in CASES]
)
def test_each_role_is_allowed_exactly_what_the_rule_table_says(role: str, capability: C) -> None:
    acting_agent = ActingAgent(
        user=SimpleNamespace(pk=1, is_superuser=False, is_active=True),
        tenant=Tenant(pk=1, name="Acme"),
        membership=Membership(role=role),
    )
    if capability in EXPECTED[role]:
        require(acting_agent, capability)  # no refusal
    else:
        with pytest.raises(PermissionDenied) as refused:
            require(acting_agent, capability)
        assert refused.value.status == 403
        assert refused.value.extra == {"capability": capability.value, "role": role}


def test_a_platform_operator_without_a_membership_acts_as_an_owner_would(tenant_acme):
    from tests.factories import UserFactory

    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    acting_agent = acting_agent_for(operator, tenant_acme)
    assert acting_agent.is_support_access
    assert {c for c in Capability if acting_agent.can(c)} == OWNER_MAY


def test_a_person_with_no_place_in_a_merchant_is_refused(tenant_acme, globex_agent_li):
    with pytest.raises(PermissionDenied):
        acting_agent_for(globex_agent_li, tenant_acme)


# --- the data the service tests share --------------------------------------------------------


@pytest.fixture
def groups(in_acme, agent_li):
    after_sales = Group.objects.create(name="After-sales", is_default=True)
    pre_sales = Group.objects.create(name="Pre-sales")
    GroupMember.objects.create(group=after_sales, user=agent_li)
    return SimpleNamespace(after_sales=after_sales, pre_sales=pre_sales)


def _ticket(subject: str, group: Group | None) -> Ticket:
    address = f"customer{Ticket.objects.count()}@example.cn"
    customer = CustomerFactory(name="李伟", email=address)
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject=subject,
        body_text="你好",
        metadata={"from": address},
    )
    Ticket.objects.filter(pk=ticket.pk).update(group=group)
    ticket.refresh_from_db()
    return ticket


@pytest.fixture
def li_ticket(groups):
    """A ticket of Li's group."""
    return _ticket("Noisy range hood", groups.after_sales)


@pytest.fixture
def other_ticket(groups):
    """A ticket of a group Li is not in."""
    return _ticket("Question before buying", groups.pre_sales)


def written(*models: type[Model]) -> tuple[int, ...]:
    """Row counts of these tables and of the audit log: unchanged after every refusal."""
    return (*(model.objects.count() for model in models), AuditEvent.objects.count())


def refused_with_nothing_written(call, *models: type[Model]) -> PermissionDenied:  # type: ignore[no-untyped-def]
    before = written(*models)
    with pytest.raises(PermissionDenied) as refused:
        call()
    assert written(*models) == before
    return refused.value


# --- tickets ---------------------------------------------------------------------------------


def test_an_agent_changes_the_status_of_a_ticket_of_their_group(agent_li, li_ticket):
    services.change_ticket_status(acting_agent=acting(agent_li), ticket=li_ticket, status="solved")
    li_ticket.refresh_from_db()
    assert li_ticket.status == "solved"
    assert AuditEvent.objects.filter(action="ticket.status_changed", actor=agent_li).count() == 1


def test_an_agent_cannot_change_the_status_of_another_groups_ticket(agent_li, other_ticket):
    error = refused_with_nothing_written(
        lambda: services.change_ticket_status(
            acting_agent=acting(agent_li), ticket=other_ticket, status="solved"
        ),
        Ticket,
    )
    assert "group you do not work in" in error.message
    other_ticket.refresh_from_db()
    assert other_ticket.status == "new"


def test_an_agent_adds_a_note_on_their_groups_ticket_but_not_on_another_groups(
    agent_li, li_ticket, other_ticket
):
    services.add_note(acting_agent=acting(agent_li), ticket=li_ticket, text="检查过了")
    assert li_ticket.messages.filter(direction="note", author_user=agent_li).count() == 1
    refused_with_nothing_written(
        lambda: services.add_note(acting_agent=acting(agent_li), ticket=other_ticket, text="x"),
        Message,
    )


def test_an_agent_tags_their_groups_ticket_but_not_another_groups(
    agent_li, li_ticket, other_ticket
):
    assert services.tag_ticket(acting_agent=acting(agent_li), ticket=li_ticket, names=["噪音"]) == [
        "噪音"
    ]
    refused_with_nothing_written(
        lambda: services.tag_ticket(
            acting_agent=acting(agent_li), ticket=other_ticket, names=["planted"]
        ),
        Tag,
        TicketTag,
    )


def test_an_agent_links_an_order_to_their_groups_ticket_but_not_to_another_groups(
    agent_li, li_ticket, other_ticket
):
    order = OrderFactory(customer=li_ticket.customer)
    services.link_order(acting_agent=acting(agent_li), ticket=li_ticket, order=order)
    li_ticket.refresh_from_db()
    assert li_ticket.order_id == order.pk
    refused_with_nothing_written(
        lambda: services.link_order(acting_agent=acting(agent_li), ticket=other_ticket, order=order)
    )
    other_ticket.refresh_from_db()
    assert other_ticket.order_id is None


def test_an_agent_takes_an_unassigned_ticket_but_cannot_give_it_to_someone_else(
    agent_li, supervisor_wang, li_ticket
):
    refused = refused_with_nothing_written(
        lambda: services.assign_ticket(
            acting_agent=acting(agent_li), ticket=li_ticket, assignee=supervisor_wang
        )
    )
    assert refused.extra["capability"] == "reassign"
    services.assign_ticket(acting_agent=acting(agent_li), ticket=li_ticket, assignee=agent_li)
    li_ticket.refresh_from_db()
    assert li_ticket.assignee == agent_li
    # Taken: moving it on again is a reassignment, which agents may not do.
    refused_with_nothing_written(
        lambda: services.assign_ticket(
            acting_agent=acting(agent_li), ticket=li_ticket, assignee=None
        )
    )
    li_ticket.refresh_from_db()
    assert li_ticket.assignee == agent_li


def test_an_agent_cannot_take_a_ticket_someone_else_holds(agent_li, supervisor_wang, li_ticket):
    services.assign_ticket(
        acting_agent=acting(supervisor_wang), ticket=li_ticket, assignee=supervisor_wang
    )
    refused_with_nothing_written(
        lambda: services.assign_ticket(
            acting_agent=acting(agent_li), ticket=li_ticket, assignee=agent_li
        )
    )
    li_ticket.refresh_from_db()
    assert li_ticket.assignee == supervisor_wang


def test_a_supervisor_reassigns_any_groups_ticket_to_a_member_only(
    supervisor_wang, agent_li, globex_agent_li, other_ticket
):
    from helpdesk.errors import BadInput

    services.assign_ticket(
        acting_agent=acting(supervisor_wang), ticket=other_ticket, assignee=agent_li
    )
    other_ticket.refresh_from_db()
    assert other_ticket.assignee == agent_li
    assert AuditEvent.objects.filter(action="ticket.assigned", actor=supervisor_wang).exists()
    before = written()
    with pytest.raises(BadInput):
        services.assign_ticket(
            acting_agent=acting(supervisor_wang), ticket=other_ticket, assignee=globex_agent_li
        )
    assert written() == before


def test_a_globex_member_cannot_open_tickets_or_add_identities_in_acme(
    in_acme, agent_li, globex_agent_li, tenant_globex
):
    from tickets.models import Customer

    customer = CustomerFactory(name="李伟")
    globex_li = acting_agent_for(globex_agent_li, tenant_globex)
    refused_with_nothing_written(
        lambda: services.open_ticket(
            acting_agent=globex_li, customer=customer, subject="planted", channel="email"
        ),
        Ticket,
        Customer,
    )
    refused_with_nothing_written(
        lambda: services.add_identity(
            acting_agent=globex_li, customer=customer, kind="phone", value="13800138000"
        ),
        CustomerIdentity,
    )
    # The same person's acme side may do both.
    ticket = services.open_ticket(
        acting_agent=acting(agent_li), customer=customer, subject="电话来的", channel="phone"
    )
    assert (
        AuditEvent.objects.get(action="ticket.opened", object_id=str(ticket.pk)).actor == agent_li
    )
    services.add_identity(
        acting_agent=acting(agent_li), customer=customer, kind="phone", value="13800138000"
    )
    assert customer.identities.filter(kind="phone").count() == 1


# --- replies ---------------------------------------------------------------------------------


def test_an_agent_replies_on_their_groups_ticket_but_not_on_another_groups(
    acme_email, agent_li, li_ticket, other_ticket
):
    reply = services.reply_to_customer(acting_agent=acting(agent_li), ticket=li_ticket, text="您好")
    assert reply.direction == "outbound" and reply.author_user == agent_li
    refused_with_nothing_written(
        lambda: services.reply_to_customer(
            acting_agent=acting(agent_li), ticket=other_ticket, text="planted"
        ),
        Message,
    )


def _failed_reply(ticket: Ticket, **fields: object) -> Message:
    return Message.objects.create(
        ticket=ticket,
        direction="outbound",
        channel="email",
        body_text="您好",
        delivery_state=fields.pop("delivery_state", "failed"),
        **fields,
    )


def test_only_an_agent_who_works_the_ticket_sends_a_failed_reply_again(
    acme_email, agent_li, supervisor_wang, other_ticket, django_capture_on_commit_callbacks
):
    reply = _failed_reply(other_ticket)
    refused_with_nothing_written(
        lambda: outbound.resend(acting_agent=acting(agent_li), message=reply)
    )
    reply.refresh_from_db()
    assert reply.delivery_state == "failed"
    with django_capture_on_commit_callbacks(execute=False):
        outbound.resend(acting_agent=acting(supervisor_wang), message=reply)
    reply.refresh_from_db()
    assert reply.delivery_state == "queued"


def test_only_an_agent_who_works_the_ticket_sends_a_retrying_reply_now(
    acme_email, agent_li, supervisor_wang, other_ticket, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    reply = _failed_reply(
        other_ticket, delivery_state="queued", delivery_next_attempt_at=timezone.now()
    )
    refused_with_nothing_written(
        lambda: outbound.send_now(acting_agent=acting(agent_li), message=reply)
    )
    reply.refresh_from_db()
    assert reply.delivery_next_attempt_at is not None
    with django_capture_on_commit_callbacks(execute=False):
        outbound.send_now(acting_agent=acting(supervisor_wang), message=reply)
    reply.refresh_from_db()
    assert reply.delivery_next_attempt_at is None


# --- channels --------------------------------------------------------------------------------


@pytest.fixture
def failed_raw(acme_email) -> RawInbound:
    raw, _ = pipeline.store_raw(
        account=acme_email, envelope=Envelope.of(customer_mail()), source="webhook"
    )
    RawInbound.objects.filter(pk=raw.pk).update(state="failed", error="orders DB down")
    raw.refresh_from_db()
    return raw


@pytest.mark.parametrize("role_fixture", ["agent_li", "supervisor_wang"])
def test_only_admins_retry_discard_or_file_inbound_messages(
    request, role_fixture, admin_zhao, failed_raw, django_capture_on_commit_callbacks
):
    person = acting(request.getfixturevalue(role_fixture))
    for call in [
        lambda: pipeline.retry_inbound(acting_agent=person, raw=failed_raw),
        lambda: pipeline.discard_inbound(acting_agent=person, raw=failed_raw, reason="spam"),
        lambda: pipeline.file_inbound_anyway(acting_agent=person, raw=failed_raw),
    ]:
        refused_with_nothing_written(call, Ticket, Message)
        failed_raw.refresh_from_db()
        assert failed_raw.state == "failed"

    filed = pipeline.file_inbound_anyway(acting_agent=acting(admin_zhao), raw=failed_raw)
    assert filed.state == "processed" and filed.ticket is not None
    assert AuditEvent.objects.filter(action="inbound.filed_by_hand", actor=admin_zhao).exists()


def test_an_admin_retries_and_discards_a_failed_inbound_message(
    admin_zhao, failed_raw, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        pipeline.retry_inbound(acting_agent=acting(admin_zhao), raw=failed_raw)
    assert AuditEvent.objects.filter(action="inbound.retried", actor=admin_zhao).count() == 1
    pipeline.discard_inbound(acting_agent=acting(admin_zhao), raw=failed_raw, reason="spam")
    failed_raw.refresh_from_db()
    assert failed_raw.state == "discarded"


def test_only_admins_resume_a_paused_channel(agent_li, supervisor_wang, admin_zhao, acme_email):
    from channels_in.models import ChannelAccount

    ChannelAccount.objects.filter(pk=acme_email.pk).update(paused=True, last_error="535 login")
    for person in [agent_li, supervisor_wang]:
        refused_with_nothing_written(
            lambda person=person: channel_services.resume_channel(
                acting_agent=acting(person), account=acme_email
            )
        )
        acme_email.refresh_from_db()
        assert acme_email.paused
    channel_services.resume_channel(acting_agent=acting(admin_zhao), account=acme_email)
    acme_email.refresh_from_db()
    assert not acme_email.paused


# --- which tickets an agent works: pages and API ---------------------------------------------


def test_an_agent_does_not_see_another_groups_ticket_anywhere(
    agent_li, tenant_acme, li_ticket, other_ticket
):
    li = login(agent_li)
    assert li.get(f"/tickets/{li_ticket.number}/").status_code == 200
    # 404, as for another merchant's number: the page never confirms the ticket exists.
    assert li.get(f"/tickets/{other_ticket.number}/").status_code == 404
    assert li.post(f"/tickets/{other_ticket.number}/note/", {"text": "planted"}).status_code == 404
    listing = li.get("/tickets/?status=all").content.decode()
    assert "Noisy range hood" in listing and "Question before buying" not in listing
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(body_text="planted").exists()


def test_an_agent_works_unrouted_tickets_and_those_assigned_to_them(
    agent_li, supervisor_wang, groups, other_ticket
):
    unrouted = _ticket("Nobody routed this", None)
    services.assign_ticket(
        acting_agent=acting(supervisor_wang), ticket=other_ticket, assignee=agent_li
    )
    li = login(agent_li)
    assert li.get(f"/tickets/{unrouted.number}/").status_code == 200
    assert li.get(f"/tickets/{other_ticket.number}/").status_code == 200
    listing = li.get("/tickets/?status=all").content.decode()
    assert "Nobody routed this" in listing and "Question before buying" in listing


def test_when_the_merchant_allows_it_agents_work_every_groups_tickets(
    agent_li, tenant_acme, other_ticket
):
    Tenant.objects.filter(pk=tenant_acme.pk).update(agents_work_all_groups=True)
    li = login(agent_li)
    assert li.get(f"/tickets/{other_ticket.number}/").status_code == 200
    assert "Question before buying" in li.get("/tickets/?status=all").content.decode()
    response = li.post(f"/tickets/{other_ticket.number}/status/", {"status": "solved"})
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        other_ticket.refresh_from_db()
        assert other_ticket.status == "solved"


def test_a_supervisor_sees_every_groups_tickets(supervisor_wang, li_ticket, other_ticket):
    wang = login(supervisor_wang)
    assert wang.get(f"/tickets/{other_ticket.number}/").status_code == 200
    listing = wang.get("/tickets/?status=all").content.decode()
    assert "Noisy range hood" in listing and "Question before buying" in listing


def test_the_api_lists_and_opens_only_tickets_in_reach(
    agent_li, tenant_acme, li_ticket, other_ticket
):
    from helpdesk.models import ApiKey

    _key, token = ApiKey.issue(tenant=tenant_acme, acting_user=agent_li, name="li's script")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    from django.test import Client

    api = Client()
    listed = api.get("/api/v1/tickets/", **headers).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["number"] for row in rows] == [li_ticket.number]
    assert api.get(f"/api/v1/tickets/{li_ticket.number}/", **headers).status_code == 200
    assert api.get(f"/api/v1/tickets/{other_ticket.number}/", **headers).status_code == 404


def test_an_agent_cannot_download_an_attachment_of_another_groups_ticket(
    agent_li, tenant_acme, li_ticket, other_ticket
):
    from django.core.files.base import ContentFile

    from tickets.models import Attachment

    def attach(ticket: Ticket) -> Attachment:
        attachment = Attachment(
            message=ticket.messages.first(),
            filename="invoice.pdf",
            content_type="application/pdf",
            size=5,
        )
        attachment.file.save("invoice.pdf", ContentFile(b"%PDF-"), save=False)
        attachment.save()
        return attachment

    mine, theirs = attach(li_ticket), attach(other_ticket)
    li = login(agent_li)
    assert li.get(f"/tickets/attachments/{mine.pk}/").status_code == 200
    assert li.get(f"/tickets/attachments/{theirs.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("role_fixture", "status"),
    [("agent_li", 403), ("supervisor_wang", 403), ("admin_zhao", 200), ("owner_chen", 200)],
)
def test_the_inbound_log_opens_for_admins_and_owners_only(request, role_fixture, status):
    response = login(request.getfixturevalue(role_fixture)).get("/inbound/log/")
    assert response.status_code == status


def test_can_work_ticket_never_reaches_into_another_merchant(
    agent_li, tenant_globex, globex_agent_li, li_ticket
):
    Tenant.objects.filter(pk=tenant_globex.pk).update(agents_work_all_groups=True)
    tenant_globex.refresh_from_db()
    globex_side = ActingAgent(
        user=globex_agent_li,
        tenant=tenant_globex,
        membership=Membership.objects.get(user=globex_agent_li),
    )
    assert not can_work_ticket(globex_side, li_ticket)
    assert can_work_ticket(acting(agent_li), li_ticket)
