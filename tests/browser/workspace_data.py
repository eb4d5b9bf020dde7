"""Tickets for the workspace's browser tests: a group of agents, named people, and messages
with the long words and addresses that used to push pages sideways."""

from __future__ import annotations

from dataclasses import dataclass

from helpdesk import tenancy
from helpdesk.models import Membership
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import Customer, Group, GroupMember, Message, Ticket

LONG_URL = "https://tracking.example.cn/parcel/" + "SF1234567890" * 12 + "?from=wechat"
LONG_WORD = "洗碗机" * 60
ADDRESS = "a.very.long.address.of.a.customer@example-shop.example.cn"


@dataclass
class Workspace:
    customer: Customer
    tickets: list[Ticket]  # newest last


def build_workspace(tenant, agent, supervisor, account, *, count: int = 3) -> Workspace:
    """``count`` tickets of one customer, mailed to ``account``, in an after-sales group
    ``agent`` works, each with a very long URL and word in it; ``agent`` is 李娜 and
    ``supervisor`` 王主管."""
    Membership.objects.filter(tenant=tenant, user=agent).update(display_name="李娜")
    Membership.objects.filter(tenant=tenant, user=supervisor).update(display_name="王主管")
    with tenancy.activate(tenant):
        group = Group.objects.create(name="售后 After-sales", is_default=True)
        GroupMember.objects.create(group=group, user=agent)
        customer = CustomerFactory(name="张伟" * 20, email=ADDRESS)
        tickets = []
        for i in range(count):
            subject = f"洗碗机漏水 第{i + 1}次" if i else "洗碗机漏水，" + LONG_WORD
            ticket = services.open_ticket(
                acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
            )
            Message.objects.create(
                ticket=ticket,
                direction="inbound",
                channel="email",
                channel_account=account,
                author_customer=customer,
                subject=subject,
                body_text=f"你好，物流信息：{LONG_URL} {LONG_WORD}",
                metadata={"from": ADDRESS},
            )
            Ticket.objects.filter(pk=ticket.pk).update(group=group)
            tickets.append(ticket)
        return Workspace(customer=customer, tickets=tickets)
