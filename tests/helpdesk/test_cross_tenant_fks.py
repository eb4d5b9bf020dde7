"""A merchant's rows point only at that merchant's rows, even when code tries otherwise.

PostgreSQL checks foreign keys without row-level security, so a plain foreign key let an Acme
message point at a Globex ticket. Every foreign key between tenant-owned tables now also has a
same-tenant composite key (helpdesk.rls); these tests try each one with raw SQL, as the app role,
enumerated from the models so a new foreign key is covered without a new test.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from helpdesk import rls, tenancy
from helpdesk.tenancy import CrossTenantReference
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory, UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="constraints are PostgreSQL's"),
]

REFERENCES = rls.same_tenant_references()


def build_one_of_everything(tenant) -> dict[str, object]:
    """A row in every tenant-owned table, all pointing at one another (a valid world)."""
    from channels_in.models import ApiChannel, ChannelAccount, Mailbox, RawInbound
    from escalation.models import (
        ApprovalRequest,
        EmpowermentPolicy,
        Escalation,
        EscalationPolicy,
        PriceDrop,
        PriceDropCompensation,
        Remedy,
        RemedyLimit,
        SupervisorAlert,
    )
    from helpdesk.models import WebhookDelivery
    from tickets.models import (
        Attachment,
        AuditEvent,
        CustomerEvent,
        CustomerIdentity,
        Group,
        GroupHoliday,
        GroupMember,
        Message,
        ReasonCode,
        Tag,
        Ticket,
        TicketTag,
    )

    with tenancy.activate(tenant):
        customer = CustomerFactory()
        CustomerIdentity.objects.create(customer=customer, kind="email", value=f"{tenant.slug}@x")
        order = OrderFactory(customer=customer)
        OrderLineFactory(order=order)
        group = Group.objects.create(name="Support")
        GroupMember.objects.create(group=group, user=UserFactory())
        GroupHoliday.objects.create(
            group=group, date=date(2026, 10, tenant.pk % 28 + 1), name="国庆"
        )
        tag = Tag.objects.create(name="vip")
        ticket = Ticket.objects.create(
            number=1, subject="s", channel="email", customer=customer, order=order, group=group
        )
        TicketTag.objects.create(ticket=ticket, tag=tag)
        account = ChannelAccount.objects.create(kind="email", name="Support")
        message = Message.objects.create(
            ticket=ticket,
            direction="inbound",
            channel="email",
            author_customer=customer,
            channel_account=account,
        )
        Attachment.objects.create(
            message=message,
            file="attachments/x",
            filename="a.txt",
            content_type="text/plain",
            size=1,
        )
        AuditEvent.objects.create(actor_label="system", action="t", object_type="t", object_id="1")
        Mailbox.objects.create(account=account, address=f"support@{tenant.slug}.example")
        api = ChannelAccount.objects.create(kind="api", name="Shop system")
        ApiChannel.objects.create(account=api, callback_url="https://shop.example/hook")
        from channels_in.models import WeChatAccount

        wechat = ChannelAccount.objects.create(kind="wechat", name="公众号")
        WeChatAccount.objects.create(account=wechat, app_id="wx0000000000000001", token="t0ken")
        # The live chat's and the phone line's rows (issues 21 and 22).
        from channels_in.models import CallBack, CallLog, ChatVisitor, PhoneLine, WebChat

        chat = ChannelAccount.objects.create(kind="chat", name="Store chat")
        WebChat.objects.create(account=chat, public_key=f"{tenant.slug}.key")
        ChatVisitor.objects.create(account=chat, visitor_id="v-1")
        phone = ChannelAccount.objects.create(kind="phone", name="Hotline")
        PhoneLine.objects.create(account=phone, number="+8613800138000", group=group)
        call_agent = UserFactory()
        call = CallLog.objects.create(
            ticket=ticket,
            agent=call_agent,
            direction="outbound",
            number="+8613800138000",
            outcome="answered",
            called_at=timezone.now(),
            message=message,
        )
        CallBack.objects.create(
            ticket=ticket,
            agent=call_agent,
            number="+8613800138000",
            due_at=timezone.now(),
            created_by=call_agent,
            call_log=call,
        )
        CustomerIdentity.objects.create(
            customer=customer, kind="external", value="cust-1", account=api
        )
        CustomerEvent.objects.create(
            customer=customer,
            channel="api",
            channel_account=api,
            kind="subscribed",
            external_id="e-1",
            occurred_at=timezone.now(),
        )
        delivery = WebhookDelivery.objects.create(
            url="https://shop.example/hook",
            event="message.created",
            body=b"{}",
            channel_account=api,
            message=message,
        )
        # The public API's own rows (issue 24).
        from helpdesk.models import OrderEvent, SubscriptionDelivery, WebhookSubscription

        subscription = WebhookSubscription.objects.create(
            url="https://shop.example/events", events=["ticket.created"], secret="s"
        )
        SubscriptionDelivery.objects.create(delivery=delivery, subscription=subscription)
        OrderEvent.objects.create(event_id="evt-1", body=b"{}", order=order)
        agent = UserFactory()
        EmpowermentPolicy.objects.create()
        RemedyLimit.objects.create(user=agent, kind="refund", currency="CNY")
        remedy = Remedy.objects.create(
            ticket=ticket,
            customer=customer,
            order=order,
            kind="refund",
            amount=1,
            currency="CNY",
            granted_by=agent,
            granted_role="agent",
            delivery=delivery,
        )
        price_drop = PriceDrop.objects.create(
            sku="SKU-1",
            product_name="Range hood",
            currency="CNY",
            old_unit_price_amount=2,
            new_unit_price_amount=1,
            protection_days=30,
            cut_at=timezone.now(),
            created_by=agent,
        )
        PriceDropCompensation.objects.create(price_drop=price_drop, order=order, remedy=remedy)
        approval = ApprovalRequest.objects.create(
            ticket=ticket,
            requested_by=agent,
            kind="refund",
            amount=1,
            currency="CNY",
            order=order,
            remedy=remedy,
            price_drop=price_drop,
        )
        EscalationPolicy.objects.create()
        Escalation.objects.create(
            ticket=ticket, trigger="over_limit", group=group, approval_request=approval
        )
        SupervisorAlert.objects.create(kind="escalation_rate", title="Rate above target")
        ReasonCode.objects.create(code="damaged", label="Damaged", is_complaint=True)
        # An import and a row it could not import (issue: merchant signup and onboarding).
        from tickets.models import ImportJob, ImportRowError

        import_job = ImportJob.objects.create(kind="orders", original_name="o.csv", format="csv")
        ImportRowError.objects.create(job=import_job, line=2, message="Enter an order number")
        RawInbound.objects.create(
            account=account,
            external_id="<1@x>",
            source="webhook",
            payload=b"x",
            payload_sha256="0" * 64,
            message=message,
            ticket=ticket,
        )
        # Rows with no foreign key to guard, so every table has one (the export reads them all).
        from helpdesk.models import IdempotentRequest, OrderFeed, TenantExport
        from tickets.models import AgentPresence, Block, Macro, ServiceTarget

        IdempotentRequest.objects.create(
            key="k-1",
            caller="user:1",
            method="POST",
            path="/api/v1/tickets/",
            fingerprint="0" * 64,
            expires_at=timezone.now(),
        )
        OrderFeed.objects.create(secret="s")
        AgentPresence.objects.create(user=agent)
        Block.objects.create(kind="email", value=f"spam@{tenant.slug}.example")
        Macro.objects.create(name="Thanks", body="Thank you!")
        ServiceTarget.objects.create(priority="normal", first_response_minutes=60)
        TenantExport.objects.create(state="failed", error="disk full")
        # The getting-started checklist's choices, and an invitation (a platform table that
        # names its merchant, exported with it).
        from helpdesk.invitations import hash_token
        from helpdesk.models import Invitation, OnboardingProgress

        OnboardingProgress.objects.create(skipped_steps=["wechat"])
        Invitation.objects.create(
            tenant=tenant, email=f"new@{tenant.slug}.example", token_hash=hash_token(tenant.slug),
            sent_at=timezone.now(), expires_at=timezone.now(),
        )  # fmt: skip
        # The newest account has no mailbox: a one-to-one reference may still point at it.
        ChannelAccount.objects.create(kind="chat", name="Spare")
    return {"ticket": ticket, "message": message, "customer": customer}


@pytest.fixture
def acme_and_globex_worlds(tenant_acme, tenant_globex):
    return build_one_of_everything(tenant_acme), build_one_of_everything(tenant_globex)


def newest_row_id(tenant, table: str) -> int:
    with tenancy.activate(tenant), connection.cursor() as cursor:
        cursor.execute(f'SELECT id FROM "{table}" ORDER BY id DESC LIMIT 1')
        row = cursor.fetchone()
    assert row is not None, f"build_one_of_everything() makes no row of {table}: add one"
    return row[0]


def run_and_check_constraints(sql: str, params: list[object]) -> None:
    """Run ``sql`` in a savepoint and check the deferred constraints at once (not at commit)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def test_every_foreign_key_between_tenant_owned_tables_is_guarded():
    guarded = {(r.table, r.column) for r in REFERENCES}
    # The 16 of the issue, among them the message -> ticket that started it.
    assert len(guarded) >= 16
    assert ("tickets_message", "ticket_id") in guarded
    assert ("channels_in_rawinbound", "ticket_id") in guarded
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE contype = 'f'")
        constraints = {row[0] for row in cursor.fetchall()}
    assert {r.constraint for r in REFERENCES} <= constraints


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda r: f"{r.table}.{r.column}")
def test_the_database_refuses_pointing_a_row_at_another_merchants_row(
    reference, acme_and_globex_worlds, tenant_acme, tenant_globex
):
    acme_row = newest_row_id(tenant_acme, reference.table)
    globex_target = newest_row_id(tenant_globex, reference.referenced_table)
    acme_target = newest_row_id(tenant_acme, reference.referenced_table)
    update = f'UPDATE "{reference.table}" SET "{reference.column}" = %s WHERE id = %s'
    with tenancy.activate(tenant_acme):
        with pytest.raises(IntegrityError, match=reference.constraint):
            run_and_check_constraints(update, [globex_target, acme_row])
        # The same statement pointing at the merchant's own row is fine.
        run_and_check_constraints(update, [acme_target, acme_row])


def test_the_database_refuses_a_new_message_on_another_merchants_ticket(
    acme_and_globex_worlds, tenant_acme
):
    _, globex = acme_and_globex_worlds
    with tenancy.activate(tenant_acme), pytest.raises(IntegrityError, match="same_tenant"):
        run_and_check_constraints(
            "INSERT INTO tickets_message (tenant_id, ticket_id, direction, channel, subject, "
            "body_text, full_text, body_html, external_id, delivery_state, delivery_error, "
            "delivery_attempts, conversation_id, then_status, status_when_written, metadata, "
            "cc, bcc, created_at) VALUES (%s, %s, 'note', 'email', '', 'planted', '', '', '', "
            "'not_sent', '', 0, '', '', '', '{}', '[]', '[]', now())",
            [tenant_acme.pk, globex["ticket"].pk],
        )
    with tenancy.activate(tenant_acme), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tickets_message WHERE body_text = 'planted'")
        assert cursor.fetchone()[0] == 0


def test_saving_a_row_that_points_at_another_merchants_row_is_refused(
    acme_and_globex_worlds, tenant_acme
):
    from tickets.models import Message

    _, globex = acme_and_globex_worlds
    with tenancy.activate(tenant_acme):
        with pytest.raises(CrossTenantReference, match=r"Message\.ticket"):
            Message.objects.create(
                ticket=globex["ticket"], direction="note", channel="email", body_text="planted"
            )
        assert not Message.objects.filter(body_text="planted").exists()
