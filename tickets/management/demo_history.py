"""Thirty days of a demo merchant's past, so the supervisor dashboard has something to show on
``make run``: complaint tickets under the merchant's reason codes, a handful escalated by
every kind of trigger, remedies granted, and the orders behind them, with one supplier whose
speakers break far more often than the others' products.

Everything is written with ``bulk_create`` (a few dozen statements for a few thousand rows),
then moved back in time with ``update()``, since ``created_at`` is stamped on insert. History
orders are numbered ``<SLUG>-H000001``: their presence is what makes seeding again a no-op.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.db.models import Case, DateTimeField, F, Model, Value, When
from django.utils import timezone

from escalation.limits import LimitExceeded
from escalation.models import ApprovalRequest, Escalation, Remedy, RemedyKind, Trigger
from helpdesk.models import Role, Tenant
from tickets.models import Channel, Customer, Group, Message, Order, OrderLine, Ticket

HISTORY_DAYS = 30
# What agents may reship without approval (their reship limit per grant).
REPLACEMENT_UP_TO = Decimal("500")
# Each statement's share of a backdating update: well under SQLite's parameter limit.
CHUNK = 200


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    supplier: str
    maker: str
    price: str
    # Orders placed in the 30 days besides those a complaint is about.
    volume: int


@dataclass(frozen=True)
class Complaint:
    """``count`` tickets under ``reason`` about ``sku`` (an order is linked) or no order."""

    reason: str
    subject: str
    body: str
    count: int
    sku: str = ""
    recent: bool = False  # crowded into the last two weeks: the story the dashboard tells


@dataclass(frozen=True)
class PlannedEscalation:
    days_ago: float
    trigger: str
    reason: str
    resolved: str = ""  # the supervisor's resolution; empty: still open
    asked: str = ""  # an over-limit refund: what the agent asked for
    needs_order: bool = False


@dataclass
class History:
    products: list[Product]
    complaints: list[Complaint]
    others: list[Complaint]
    escalations: list[PlannedEscalation]
    customer_names: list[str]
    agents_refund_limit: str
    others_group: str = ""
    pre_sales_group: str = ""


SPEAKER = Product(
    "AC-SPK-BT5",
    "蓝牙音箱 Bluetooth speaker BT5",
    "Dongguan Sound Parts 东莞声学配件",
    "Acme",
    "399.00",
    220,
)

ACME_HISTORY = History(
    products=[
        Product(
            "FT-HOOD-900",
            "吸油烟机 Range hood JQ01",
            "Ningbo Fotile Supply",
            "Fotile",
            "3299.00",
            500,
        ),
        Product(
            "FT-STOVE-2",
            "燃气灶 Gas hob 2-burner",
            "Ningbo Fotile Supply",
            "Fotile",
            "1599.00",
            400,
        ),
        Product("AC-KETTLE-1", "电水壶 Kettle 1.7L", "Foshan Kitchen Co.", "Acme", "199.00", 400),
        SPEAKER,
    ],
    complaints=[
        Complaint(
            "damaged",
            "音箱支架断裂 Speaker stand snapped",
            "音箱的支架腿收到没几天就断了，放不稳。",
            14,
            SPEAKER.sku,
            recent=True,
        ),
        Complaint(
            "not_as_described",
            "油烟机吸力不如描述",
            "吸力比详情页写的小很多，炒菜油烟散不掉。",
            2,
            "FT-HOOD-900",
        ),
        Complaint("damaged", "燃气灶面板到货有裂痕", "玻璃面板到货就有一道裂痕。", 2, "FT-STOVE-2"),
        Complaint(
            "wrong_item", "发错货：电水壶颜色不对", "我买的白色，收到的是黑色。", 2, "AC-KETTLE-1"
        ),
        Complaint("late_delivery", "快递一周没动静", "物流信息一周没有更新了，什么时候能到？", 40),
        Complaint("damaged", "外包装破损", "外箱压坏了，里面的东西不知道有没有问题。", 26),
        Complaint("wrong_item", "少发了配件", "说明书上写有两个配件，只收到一个。", 24),
        Complaint("not_as_described", "颜色和图片不一样", "实物颜色和商品图片差别很大。", 20),
        Complaint("opened_as_new", "收到的像二手的", "盒子是拆过的，机器上有使用痕迹。", 10),
        Complaint(
            "not_as_described",
            "Item not as described",
            "The capacity is smaller than the listing says.",
            10,
        ),
    ],
    others=[
        Complaint(
            "pre_sales", "请问这款油烟机适合多大的厨房？", "厨房大概 6 平米，选哪款合适？", 25
        ),
        Complaint(
            "price_protection",
            "刚买就降价了，能保价吗？",
            "买了三天就降了 100 元，能退差价吗？",
            12,
        ),
        Complaint(
            "pre_sales", "Do you ship to Hong Kong?", "Can I order to a Hong Kong address?", 8
        ),
    ],
    escalations=[
        PlannedEscalation(
            22.5,
            Trigger.MANUAL,
            "客户情绪激动，要求赔偿误工费",
            resolved="主管致电安抚，补偿优惠券",
        ),
        PlannedEscalation(
            17.2,
            Trigger.FIRST_RESPONSE_BREACH,
            "首次回复超时",
            resolved="已回复，排班调整",
        ),
        PlannedEscalation(12.4, Trigger.RESOLUTION_BREACH, "解决超时", resolved="补发配件后解决"),
        PlannedEscalation(
            9.3,
            Trigger.REPEAT_CONTACT,
            "7 天内第 3 次联系同一订单",
            resolved="主管跟进物流，已签收",
            needs_order=True,
        ),
        PlannedEscalation(
            5.1,
            Trigger.OVER_LIMIT,
            "退款超出客服单次上限",
            asked="350",
            needs_order=True,
        ),
        PlannedEscalation(
            2.8,
            Trigger.OVER_LIMIT,
            "客户要求全额退款，超出客服单次上限",
            asked="399",
            needs_order=True,
        ),
        PlannedEscalation(0.6, Trigger.CUSTOMER_REQUEST, "客户说：找你们主管"),
    ],
    customer_names=[
        f"{family}{given}"
        for family in "王李张刘陈杨黄赵吴周"
        for given in ("伟", "芳", "娜", "敏", "静", "磊")
    ],
    agents_refund_limit="300",
    others_group="售后 After-sales",
    pre_sales_group="售前 Pre-sales",
)

HISTORY = {"acme": ACME_HISTORY}
CHANNELS = [Channel.EMAIL, Channel.WECHAT, Channel.CHAT, Channel.PHONE]


def order_prefix(tenant: Tenant) -> str:
    return f"{tenant.slug.upper()}-H"


def backdate(model: type[Model], moments: dict[int, datetime], *fields: str) -> None:
    """Set ``fields`` of each row ``pk`` to ``moments[pk]``, a chunk of rows per statement."""
    items = list(moments.items())
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        moment = Case(
            *[When(pk=pk, then=Value(at)) for pk, at in chunk], output_field=DateTimeField()
        )
        model.objects.filter(pk__in=[pk for pk, _at in chunk]).update(
            **dict.fromkeys(fields, moment)
        )


class HistorySeeder:
    """Plans the merchant's 30 days in memory, then writes them in a few statements."""

    def __init__(
        self,
        *,
        tenant: Tenant,
        history: History,
        agents: list[AbstractUser],
        supervisor: AbstractUser,
    ) -> None:
        self.tenant = tenant
        self.history = history
        self.agents = agents
        self.supervisor = supervisor
        self.rng = random.Random(f"{tenant.slug}-history")
        self.now = timezone.now()
        self.currency = tenant.default_currency
        self.products = {product.sku: product for product in history.products}
        self.orders: list[Order] = []
        self.lines: list[OrderLine] = []
        self.order_count = 0

    # --- planning ------------------------------------------------------------------------------

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    def new_order(self, product: Product, customer: Customer, placed: datetime) -> Order:
        self.order_count += 1
        order = Order(
            tenant_id=self.tenant.pk,
            customer=customer,
            number=f"{order_prefix(self.tenant)}{self.order_count:06d}",
            status=Order.Status.DELIVERED if placed < self.ago(3) else Order.Status.SHIPPED,
            currency=self.currency,
            total_amount=Decimal(product.price),
            paid_amount=Decimal(product.price),
            placed_at=placed,
            shipped_at=placed + timedelta(days=1),
            delivered_at=placed + timedelta(days=3) if placed < self.ago(3) else None,
            carrier="SF Express",
            tracking_number=f"SFH{self.order_count:09d}",
        )
        self.orders.append(order)
        self.lines.append(
            OrderLine(
                tenant_id=self.tenant.pk,
                order=order,
                sku=product.sku,
                product_name=product.name,
                supplier=product.supplier,
                manufacturer=product.maker,
                quantity=1,
                unit_price_amount=Decimal(product.price),
            )
        )
        return order

    def ticket_moments(self, count: int) -> list[datetime]:
        """``count`` moments over the 30 days, a few more each week (business grows)."""
        weights = [1 + (HISTORY_DAYS - day) / HISTORY_DAYS for day in range(HISTORY_DAYS)]
        days = self.rng.choices(range(HISTORY_DAYS), weights=weights, k=count)
        return sorted(
            self.ago(day + self.rng.uniform(0.02, 0.98)) for day in days
        )  # never in the future

    def plan_tickets(
        self, customers: list[Customer], groups: dict[str, Group]
    ) -> list[tuple[Ticket, Complaint]]:
        history = self.history
        complaints = [c for c in history.complaints for _n in range(c.count)]
        moments = self.ticket_moments(len(complaints))
        # The recent ones (a defect that began two weeks ago) take the latest moments first.
        recent = [c for c in complaints if c.recent]
        spread = [c for c in complaints if not c.recent]
        self.rng.shuffle(spread)
        late = moments[-len(recent) * 3 :] if recent else []
        recent_moments = set(self.rng.sample(range(len(late)), len(recent)))
        ordered: list[Complaint] = []
        recent_iter, spread_iter = iter(recent), iter(spread)
        first_late = len(moments) - len(late)
        for index in range(len(moments)):
            late_index = index - first_late
            if late_index >= 0 and late_index in recent_moments:
                ordered.append(next(recent_iter))
            else:
                ordered.append(next(spread_iter))
        others = [c for c in history.others for _n in range(c.count)]
        self.rng.shuffle(others)
        planned = list(zip(moments, ordered, strict=True)) + list(
            zip(self.ticket_moments(len(others)), others, strict=True)
        )
        planned.sort(key=lambda pair: pair[0])
        default = groups.get(history.others_group)
        pre_sales = groups.get(history.pre_sales_group) or default
        tickets = []
        for created, complaint in planned:
            customer = self.rng.choice(customers)
            order = None
            if complaint.sku:
                placed = created - timedelta(days=self.rng.uniform(2, 8))
                order = self.new_order(self.products[complaint.sku], customer, placed)
            tickets.append(
                (
                    self.plan_ticket(
                        created=created,
                        complaint=complaint,
                        customer=customer,
                        order=order,
                        group=pre_sales if complaint.reason == "pre_sales" else default,
                    ),
                    complaint,
                )
            )
        return tickets

    def plan_ticket(
        self,
        *,
        created: datetime,
        complaint: Complaint,
        customer: Customer,
        order: Order | None,
        group: Group | None,
    ) -> Ticket:
        rng = self.rng
        age = self.now - created
        if age > timedelta(days=3):
            status = Ticket.Status.CLOSED if rng.random() < 0.3 else Ticket.Status.SOLVED
        else:
            status = rng.choice([Ticket.Status.NEW, Ticket.Status.OPEN, Ticket.Status.PENDING])
        answered = status != Ticket.Status.NEW
        assignee = rng.choice(self.agents) if answered else None
        responded = created + timedelta(minutes=rng.uniform(5, 150))
        solved = min(created + timedelta(hours=rng.uniform(3, 60)), self.now)
        return Ticket(
            tenant_id=self.tenant.pk,
            subject=complaint.subject,
            status=status,
            priority=Ticket.Priority.HIGH if rng.random() < 0.15 else Ticket.Priority.NORMAL,
            channel=rng.choice(CHANNELS),
            customer=customer,
            order=order,
            assignee=assignee,
            group=group,
            reason_code=complaint.reason,
            assigned_at=responded - timedelta(minutes=2) if assignee else None,
            first_responded_at=min(responded, self.now) if answered else None,
            solved_at=solved if status in {Ticket.Status.SOLVED, Ticket.Status.CLOSED} else None,
            closed_at=solved if status == Ticket.Status.CLOSED else None,
            queued_at=created if assignee is None else None,
            last_customer_message_at=created,
        )

    # --- writing -------------------------------------------------------------------------------

    def seed(self, groups: dict[str, Group]) -> None:
        if Order.objects.filter(number__startswith=order_prefix(self.tenant)).exists():
            return  # seeded before: the history stays as it was
        customers = Customer.objects.bulk_create(
            [Customer(tenant_id=self.tenant.pk, name=name) for name in self.history.customer_names]
        )
        for product in self.history.products:
            for _n in range(product.volume):
                placed = self.ago(self.rng.uniform(0.05, HISTORY_DAYS - 0.05))
                self.new_order(product, self.rng.choice(customers), placed)
        planned = self.plan_tickets(customers, groups)
        escalated = self.plan_escalations([ticket for ticket, _c in planned])
        Order.objects.bulk_create(self.orders, batch_size=500)
        OrderLine.objects.bulk_create(self.lines, batch_size=500)
        tickets = [ticket for ticket, _c in planned]
        self.number(tickets)
        moments = {id(ticket): ticket.last_customer_message_at for ticket in tickets}
        Ticket.objects.bulk_create(tickets, batch_size=500)
        backdate(Ticket, {t.pk: moments[id(t)] for t in tickets}, "created_at", "updated_at")
        messages = Message.objects.bulk_create(
            [
                Message(
                    tenant_id=self.tenant.pk,
                    ticket=ticket,
                    direction=Message.Direction.INBOUND,
                    channel=ticket.channel,
                    author_customer=ticket.customer,
                    subject=ticket.subject,
                    body_text=complaint.body,
                    full_text=complaint.body,
                )
                for ticket, complaint in planned
            ],
            batch_size=500,
        )
        backdate(Message, {m.pk: moments[id(m.ticket)] for m in messages}, "created_at")
        self.write_escalations(escalated)
        self.write_remedies(planned)

    def number(self, tickets: list[Ticket]) -> None:
        """The merchant's next numbers, oldest ticket first, taken from its counter."""
        Tenant.objects.filter(pk=self.tenant.pk).update(
            last_ticket_number=F("last_ticket_number") + len(tickets)
        )
        self.tenant.refresh_from_db(fields=["last_ticket_number"])
        first = self.tenant.last_ticket_number - len(tickets) + 1
        for offset, ticket in enumerate(tickets):
            ticket.number = first + offset

    def plan_escalations(
        self, tickets: list[Ticket]
    ) -> list[tuple[Ticket, PlannedEscalation, datetime]]:
        complaint_codes = {c.reason for c in self.history.complaints}
        taken: set[int] = set()
        chosen = []
        for planned in self.history.escalations:
            target = self.ago(planned.days_ago)
            candidates = [
                (index, ticket)
                for index, ticket in enumerate(tickets)
                if index not in taken
                and ticket.reason_code in complaint_codes
                and ticket.assignee is not None
                and (ticket.order is not None or not planned.needs_order)
                # A refund asked for is never more than was paid on the order.
                and (not planned.asked or ticket.order.paid_amount >= Decimal(planned.asked))
            ]
            index, ticket = min(
                candidates,
                key=lambda pair: abs((pair[1].last_customer_message_at - target).total_seconds()),
            )
            taken.add(index)
            created = ticket.last_customer_message_at
            at = min(created + timedelta(hours=self.rng.uniform(1, 30)), self.now)
            ticket.escalated_at = at
            if not planned.resolved and not ticket.is_open:
                ticket.status, ticket.solved_at, ticket.closed_at = Ticket.Status.OPEN, None, None
            chosen.append((ticket, planned, at))
        return chosen

    def write_escalations(self, chosen: list[tuple[Ticket, PlannedEscalation, datetime]]) -> None:
        requests: dict[int, ApprovalRequest] = {}
        for ticket, planned, _at in chosen:
            if planned.asked:
                asked = Decimal(planned.asked)
                refused = LimitExceeded(
                    limit="per_grant",
                    allowed=Decimal(self.history.agents_refund_limit),
                    requested=asked,
                    currency=self.currency,
                    kind=RemedyKind.REFUND,
                )
                requests[ticket.pk] = ApprovalRequest(
                    tenant_id=self.tenant.pk,
                    ticket=ticket,
                    requested_by=ticket.assignee,
                    kind=RemedyKind.REFUND,
                    amount=asked,
                    currency=self.currency,
                    order=ticket.order,
                    note="客户要求按订单金额退款，超出了我的单次上限。",
                    refusal_limit="per_grant",
                    refusal=refused.message,
                )
        ApprovalRequest.objects.bulk_create(list(requests.values()))
        escalations = [
            Escalation(
                tenant_id=self.tenant.pk,
                ticket=ticket,
                trigger=planned.trigger,
                reason=planned.reason,
                raised_by=ticket.assignee
                if planned.trigger in {Trigger.MANUAL, Trigger.OVER_LIMIT}
                else None,
                agent=ticket.assignee,
                group=ticket.group,
                approval_request=requests.get(ticket.pk),
                state=Escalation.State.RESOLVED if planned.resolved else Escalation.State.OPEN,
                resolved_by=self.supervisor if planned.resolved else None,
                resolved_at=min(at + timedelta(hours=4), self.now) if planned.resolved else None,
                resolution=planned.resolved,
            )
            for ticket, planned, at in chosen
        ]
        Escalation.objects.bulk_create(escalations)
        when = {ticket.pk: at for ticket, _p, at in chosen}
        backdate(Escalation, {e.pk: when[e.ticket.pk] for e in escalations}, "created_at")
        backdate(ApprovalRequest, {r.pk: when[pk] for pk, r in requests.items()}, "created_at")

    def write_remedies(self, planned: list[tuple[Ticket, Complaint]]) -> None:
        """About one solved complaint in three got something: a coupon without an order, a
        partial refund or a replacement with one."""
        rng = self.rng
        complaint_codes = {c.reason for c in self.history.complaints}
        remedies, moments = [], []
        for ticket, complaint in planned:
            if (
                ticket.reason_code not in complaint_codes
                or ticket.solved_at is None
                or ticket.assignee is None
                or rng.random() > 0.35
            ):
                continue
            price = ticket.order.paid_amount if ticket.order else Decimal(0)
            if ticket.order is None:
                kind, amount, item = RemedyKind.GIFT, Decimal(rng.choice([20, 30, 50])), "优惠券"
            elif price <= REPLACEMENT_UP_TO and rng.random() < 0.5:
                kind, item, amount = RemedyKind.RESHIP, self.products[complaint.sku].name, price
            else:
                # Within the agents' refund limits: at most their per-grant cap and half the order.
                cap = min(Decimal(self.history.agents_refund_limit), price / 2)
                kind, item = RemedyKind.REFUND, ""
                amount = min(Decimal(rng.choice([50, 80, 100, 150, 200])), cap // 10 * 10)
            at = ticket.first_responded_at or ticket.solved_at
            remedies.append(
                Remedy(
                    tenant_id=self.tenant.pk,
                    ticket=ticket,
                    customer=ticket.customer,
                    order=ticket.order if kind != RemedyKind.GIFT else None,
                    kind=kind,
                    amount=amount,
                    currency=self.currency,
                    item=item,
                    granted_by=ticket.assignee,
                    granted_role=Role.AGENT,
                    execution=Remedy.Execution.EXECUTED,
                    executed_at=at + timedelta(minutes=1),
                )
            )
            moments.append(at)
        Remedy.objects.bulk_create(remedies, batch_size=500)
        backdate(
            Remedy,
            {remedy.pk: at for remedy, at in zip(remedies, moments, strict=True)},
            "created_at",
        )
