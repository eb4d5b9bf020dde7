"""Bench data: a merchant with a million tickets, written fast and through the app's own walls.

``python -m bench.generate --tickets 1000000 --tenants 100 --tenant bench-1m`` (``make bench-data``
runs it on the ``helpdesk_bench`` database as the app's role): a million tickets over a hundred
merchants, the first (``bench-1m``) holding half and the others a Zipf share of the rest. It
creates, or completes, each bench merchant:
members (agents, supervisors, an admin, an owner), groups, reason codes (complaints and not), an
escalation policy with a monthly remedy budget, the agents' remedy limits, then customers with
identities, orders with order lines (SKUs, products, suppliers), tickets over the last two years
(statuses, priorities, channels, reason codes, assignees, groups, service-level times), about
4% of complaint tickets escalated with an ``Escalation`` each (every trigger), approval requests
for the over-limit ones, remedies with Decimal amounts, and messages (one inbound per ticket, a
reply where the ticket was answered, and often a second exchange: about three a ticket). The
merchants share the tables, so a query that forgets its tenant reads the wrong rows.

Rows go in with PostgreSQL's COPY, one transaction per batch of tickets, as the app role with the
merchant in ``app.tenant_id``. PostgreSQL refuses COPY into a table under row-level security, so
each table's rows are COPYed into a temporary table and moved with one INSERT ... SELECT, which
the policy checks row by row, as it checks the app's own. Rows that others point at get ids drawn
from their table's sequence beforehand, the rest on insert, so the sequences stay right. A batch
is all-or-nothing, so a second run finds what is there and writes only what is missing (nothing,
when the merchant is complete); ``--fresh`` deletes the merchant's rows first.

Later benchmarks import ``generate`` (and ``ensure_cast``) rather than writing their own data.
Results go to stdout as ``name: value`` lines; see bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import multiprocessing
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

import django  # noqa: E402
from django.apps import apps as django_apps  # noqa: E402

if not django_apps.ready:
    django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections, models, transaction  # noqa: E402
from django.db.models import Max  # noqa: E402
from django.utils import timezone  # noqa: E402

from escalation.models import (  # noqa: E402
    PAYS_OUT,
    ApprovalRequest,
    Escalation,
    EscalationPolicy,
    Remedy,
    RemedyKind,
    RemedyLimit,
    Trigger,
)
from helpdesk import tenancy  # noqa: E402
from helpdesk.db.roles import connected_as_owner  # noqa: E402
from helpdesk.models import Membership, Role, Tenant  # noqa: E402
from helpdesk.rls import tenant_owned_tables  # noqa: E402
from tickets.models import (  # noqa: E402
    AuditEvent,
    Customer,
    CustomerIdentity,
    Group,
    GroupMember,
    IdentityKind,
    Message,
    Order,
    OrderLine,
    ReasonCode,
    Ticket,
)
from tickets.search import document_words  # noqa: E402

# Two years of history: the "last 30 days" a dashboard reads are a small slice of the whole.
DAYS = 730
# 300,000 customers for a million tickets: some write more than once.
CUSTOMERS_PER_TICKET = 0.3
# Tickets with a second exchange (the customer writes again, the agent answers): with the first
# message and its reply, about three messages a ticket.
FOLLOW_UP_SHARE = 0.55
# Orders nobody wrote about, per ticket: the defect rate's denominator is every order.
QUIET_ORDERS_PER_TICKET = 0.3
# Of ``--tickets`` over ``--tenants`` merchants, the first holds this share; the others share
# the rest on a Zipf curve (the k-th of them ∝ 1/k), as merchants of a real helpdesk do.
LARGEST_SHARE = 0.5

# (code, label, complaint, share of tickets, group): complaints add up to 40%.
REASONS = [
    ("damaged", "Arrived damaged 到货破损", True, 0.12, "after-sales"),
    ("defective", "Does not work 质量问题", True, 0.10, "after-sales"),
    ("late-delivery", "Late delivery 物流延迟", True, 0.08, "logistics"),
    ("wrong-item", "Wrong item 发错货", True, 0.05, "returns"),
    ("missing-parts", "Missing parts 缺少配件", True, 0.03, "after-sales"),
    ("rude-service", "Unhelpful service 服务态度", True, 0.02, "vip"),
    ("order-status", "Where is my order 订单查询", False, 0.18, "logistics"),
    ("product-question", "Product question 产品咨询", False, 0.15, "pre-sales"),
    ("installation", "Installation 安装预约", False, 0.10, "after-sales"),
    ("invoice", "Invoice 发票", False, 0.08, "pre-sales"),
    ("return-request", "Return request 退换货申请", False, 0.06, "returns"),
    ("other", "Other 其他", False, 0.03, "pre-sales"),
]
GROUPS = [
    ("pre-sales", "Pre-sales 售前", True),
    ("after-sales", "After-sales 售后", False),
    ("logistics", "Logistics 物流", False),
    ("returns", "Returns 退换货", False),
    ("vip", "VIP 贵宾", False),
]
SUPPLIERS = [
    "Ningbo Fangtai Supply",
    "Shunde Midea Works",
    "Foshan Kitchen Parts",
    "Hangzhou Robam OEM",
    "Zhongshan Vatti Trading",
    "Suzhou Appliance Co",
    "Qingdao Haier Components",
    "Guangzhou Home Goods",
    "Xiamen Steelware",
    "Dongguan Plastics",
    "Shenzhen Smart Devices",
    "Wuxi Motor Factory",
]
PRODUCTS = [
    ("range-hood", "Range hood 吸油烟机", "kitchen", 2999),
    ("gas-hob", "Gas hob 燃气灶", "kitchen", 1899),
    ("kettle", "Electric kettle 电水壶", "small", 199),
    ("dishwasher", "Dishwasher 洗碗机", "kitchen", 4599),
    ("steriliser", "Steriliser 消毒柜", "kitchen", 2299),
    ("rice-cooker", "Rice cooker 电饭煲", "small", 499),
    ("air-fryer", "Air fryer 空气炸锅", "small", 399),
    ("water-heater", "Water heater 热水器", "bathroom", 2599),
    ("oven", "Built-in oven 嵌入式烤箱", "kitchen", 3899),
    ("blender", "Blender 破壁机", "small", 699),
    ("purifier", "Water purifier 净水器", "kitchen", 2499),
    ("fan", "Tower fan 塔扇", "seasonal", 299),
]
SKUS_PER_PRODUCT = 3
CHANNELS = (["email", "chat", "wechat", "phone", "web"], [35, 25, 25, 10, 5])
PRIORITIES = (["low", "normal", "high", "urgent"], [15, 60, 20, 5])
TRIGGERS = (
    [
        Trigger.OVER_LIMIT,
        Trigger.CUSTOMER_REQUEST,
        Trigger.MANUAL,
        Trigger.FIRST_RESPONSE_BREACH,
        Trigger.RESOLUTION_BREACH,
        Trigger.REPEAT_CONTACT,
    ],
    [35, 25, 15, 10, 5, 10],
)
# What an agent may give per grant without asking (the what-if's "current limit").
AGENT_LIMITS = {
    RemedyKind.GIFT: Decimal("50"),
    RemedyKind.RESHIP: Decimal("300"),
    RemedyKind.PRICE_PROTECTION: Decimal("100"),
    RemedyKind.REFUND: Decimal("200"),
    RemedyKind.FREE_ORDER: Decimal("300"),
}
REMEDY_KINDS = (list(AGENT_LIMITS), [35, 20, 10, 30, 5])
ESCALATION_REASONS = {
    Trigger.OVER_LIMIT: "Remedy above the agent's per-grant limit",
    Trigger.CUSTOMER_REQUEST: "主管",
    Trigger.MANUAL: "Customer very upset, needs a supervisor's call",
    Trigger.FIRST_RESPONSE_BREACH: "First-response target missed",
    Trigger.RESOLUTION_BREACH: "Resolution target missed",
    Trigger.REPEAT_CONTACT: "3 contacts in 7 days",
}
RAISED_BY_AGENT = frozenset({Trigger.OVER_LIMIT, Trigger.MANUAL})
# Every table a batch writes (foreign keys are checked at commit, so the order is for reading).
MODELS = [
    Customer, CustomerIdentity, Order, OrderLine, Ticket, Message, Remedy, ApprovalRequest,
    Escalation, AuditEvent,
]  # fmt: skip
# Tables other rows of a batch point at: their ids are drawn before the rows are written.
POINTED_AT = frozenset({Customer, Order, Ticket, Remedy, ApprovalRequest})
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]
INBOUND_ZH = [
    "您好，我买的{product}有问题，订单号{order}，麻烦尽快处理。",
    "{product}收到了，但是外包装破损，里面也有划痕。",
    "请问{product}什么时候能发货？已经等了一周了。",
    "{product}用了三天就坏了，希望退换。",
    "想咨询一下{product}的安装和保修。",
    "{product}的退款还没到账，订单{order}，有事请打我电话{phone}。",
]
INBOUND_EN = [
    "Hello, my {product} (order {order}) has a problem, please help.",
    "The {product} arrived with a cracked panel.",
    "When will my {product} ship? It has been a week.",
    "How do I get the {product} installed?",
    "I was told the {product} would be refunded, call me on {phone}.",
]
FOLLOW_UPS = [
    "还没有收到回复，请尽快处理，谢谢。",
    "照片已经发过去了，请查看一下。",
    "请问退款大概什么时候到账？",
    "Any update on this? I am still waiting.",
    "I have sent the photos you asked for.",
]
REPLIES = [
    "您好，已为您登记，我们会在24小时内联系您。",
    "抱歉给您带来不便，已为您安排处理。",
    "Thank you for writing, we are on it and will update you shortly.",
]


@dataclass(frozen=True)
class Options:
    """What to generate; ``python -m bench.generate --help`` explains each."""

    tickets: int = 1_000_000
    tenant: str = "bench-1m"
    tenants: int = 1
    seed: int = 1
    fresh: bool = False
    workers: int = 2
    batch: int = 10_000
    analyze: bool = True
    progress: bool = True
    # Give inbound email a Message-ID (``Message.external_id``, "<number>.<slug>@seed.bench.example"),
    # as real mail has, so generated mail can reply to it (bench/peer.py).
    message_ids: bool = True


@dataclass(frozen=True)
class Agent:
    user_id: int
    group: str
    # How much more (or less) often than the average agent this one escalates complaints.
    escalates: float


@dataclass(frozen=True)
class Sku:
    sku: str
    product_name: str
    category: str
    supplier: str
    manufacturer: str
    price: Decimal
    # How much more often than the average SKU it is the subject of a complaint.
    defects: float


@dataclass
class Cast:
    """A bench merchant's people, groups and catalogue: what every batch draws from."""

    tenant: Tenant
    currency: str
    agents: list[Agent]
    supervisors: list[int]
    groups: dict[str, int]
    skus: list[Sku]
    message_ids: bool = True  # Options.message_ids


@dataclass
class Report:
    """What a run wrote and how long each part took."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tickets_created: int = 0
    batches: int = 0

    def add(self, other: Report) -> None:
        for table, count in other.rows.items():
            self.rows[table] += count
        for table, seconds in other.seconds.items():
            self.seconds[table] += seconds
        self.tickets_created += other.tickets_created
        self.batches += other.batches


# --- COPY ----------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: Any) -> str:
    """``value`` as one field of COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).translate(_ESCAPES)
    return str(value)


def _text(value: str | None) -> str:
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def _moment(value: datetime | None) -> str:
    return "\\N" if value is None else value.isoformat()


def _plain(value: Any) -> str:
    """Numbers, UUIDs, Decimals: their str() is what COPY reads."""
    return "\\N" if value is None else str(value)


def converter(model_field: models.Field) -> Any:
    """The fastest ``copy_text`` for the values of ``model_field``."""
    kind = model_field.get_internal_type()
    if kind in {"CharField", "TextField", "SlugField", "EmailField", "URLField"}:
        return _text
    if kind == "DateTimeField":
        return _moment
    if kind in {"BooleanField", "JSONField"}:
        return copy_text
    return _plain


class CopyTable:
    """COPY rows into one model's table: the columns ``rows`` set (the same in every row),
    every other column its model default, worked out once."""

    def __init__(self, model: type[models.Model], columns: Iterable[str]) -> None:
        self.model = model
        self.table = model._meta.db_table
        self.given = list(columns)
        by_column = {f.column: f for f in model._meta.concrete_fields}
        unknown = [column for column in self.given if column not in by_column]
        if unknown:
            raise ValueError(f"{self.table} has no column {', '.join(unknown)}")
        now = timezone.now()
        rest, defaults = [], []
        for column, model_field in by_column.items():
            if column in self.given or model_field.primary_key:
                continue  # an id not given is drawn on insert
            if getattr(model_field, "auto_now", False) or getattr(
                model_field, "auto_now_add", False
            ):
                default: Any = now
            elif model_field.unique and callable(model_field.default):
                raise ValueError(f"{self.table}.{column} is unique: give it per row")
            else:
                default = model_field.get_default()
            if default is None and not model_field.null:
                raise ValueError(f"{self.table}.{column} has no default: give it per row")
            rest.append(column)
            defaults.append(copy_text(default))
        self.columns = self.given + rest
        self.converters = [(column, converter(by_column[column])) for column in self.given]
        self.suffix = "".join("\t" + value for value in defaults) + "\n"

    def copy(self, cursor: Any, rows: list[dict[str, Any]]) -> int:
        """Send ``rows`` in one COPY; returns how many."""
        buffer = io.StringIO()
        given, converters, suffix = self.given, self.converters, self.suffix
        for row in rows:
            if len(row) != len(given):
                raise ValueError(f"a {self.table} row sets {sorted(row)}, not {sorted(given)}")
            buffer.write(
                "\t".join([convert(row[column]) for column, convert in converters]) + suffix
            )
        buffer.seek(0)
        # PostgreSQL refuses COPY into a table under row-level security, so the rows go to a
        # temporary table of the transaction first (the app role may create those), then into
        # the table with one INSERT ... SELECT, which the policy checks row by row.
        stage = f"bench_stage_{self.table}"
        names = ", ".join(f'"{column}"' for column in self.columns)
        cursor.execute(
            f'CREATE TEMPORARY TABLE "{stage}" ON COMMIT DROP AS '
            f'SELECT {names} FROM "{self.table}" WITH NO DATA'
        )
        cursor.copy_expert(f'COPY "{stage}" ({names}) FROM STDIN', buffer)
        cursor.execute(f'INSERT INTO "{self.table}" ({names}) SELECT {names} FROM "{stage}"')
        cursor.execute(f'DROP TABLE "{stage}"')  # gone at once, even inside an outer transaction
        return len(rows)


class Ids:
    """Primary keys drawn ahead from each table's own sequence, a block at a time, so rows can
    point at each other before they are written and the sequences stay right."""

    def __init__(self, block: int = 20_000) -> None:
        self.block_size = block
        self._free: dict[type[models.Model], Iterator[int]] = {}

    def take(self, model: type[models.Model]) -> int:
        try:
            return next(self._free[model])
        except (KeyError, StopIteration):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [model._meta.db_table, self.block_size],
                )
                self._free[model] = iter([row[0] for row in cursor.fetchall()])
            return next(self._free[model])

    def block(self, model: type[models.Model], count: int) -> list[int]:
        return [self.take(model) for _ in range(count)]


# --- The merchant's cast ---------------------------------------------------------------------


def tenant_slugs(options: Options) -> list[str]:
    return [options.tenant] + [f"{options.tenant}-{n}" for n in range(2, options.tenants + 1)]


def tenant_sizes(total: int, tenants: int) -> list[int]:
    """Tickets per merchant, adding up to ``total``: the first holds ``LARGEST_SHARE``, the k-th
    of the others a share of the rest proportional to 1/k (at least one ticket each)."""
    if tenants == 1:
        return [total]
    largest = math.ceil(total * LARGEST_SHARE)
    rest = total - largest
    weights = [1 / k for k in range(1, tenants)]
    others = [max(1, math.floor(rest * w / sum(weights))) for w in weights]
    others[0] += max(0, rest - sum(others))  # what the rounding down left over
    return [largest, *others]


def ensure_cast(slug: str, tickets: int, seed: int, currency: str = "CNY") -> Cast:
    """The bench merchant ``slug`` with its people, groups, reason codes, escalation policy and
    the agents' remedy limits, created where missing (the same ones on every run)."""
    rng = random.Random(f"{seed}:{slug}:cast")
    tenant, _ = Tenant.objects.get_or_create(
        slug=slug, defaults={"name": f"Bench {slug}", "default_currency": currency}
    )
    currency = tenant.default_currency
    agents_wanted = max(2 * len(GROUPS), min(80, tickets // 15_000))
    people = [(f"{slug}-agent-{n}", Role.AGENT) for n in range(agents_wanted)]
    people += [(f"{slug}-supervisor-{n}", Role.SUPERVISOR) for n in range(2)]
    people += [(f"{slug}-admin", Role.ADMIN), (f"{slug}-owner", Role.OWNER)]
    users = ensure_members(tenant, people)
    with tenancy.activate(tenant):
        groups = {}
        for key, name, is_default in GROUPS:
            group, _ = Group.objects.get_or_create(name=name, defaults={"is_default": is_default})
            groups[key] = group.pk
        agents = []
        keys = [key for key, _name, _default in GROUPS]
        for n in range(agents_wanted):
            user_id = users[f"{slug}-agent-{n}"]
            key = keys[n % len(keys)]
            agents.append(Agent(user_id, key, escalates=round(rng.uniform(0.3, 2.0), 2)))
        existing = set(GroupMember.objects.values_list("group_id", "user_id"))
        GroupMember.objects.bulk_create(
            GroupMember(tenant=tenant, group_id=groups[agent.group], user_id=agent.user_id)
            for agent in agents
            if (groups[agent.group], agent.user_id) not in existing
        )
        for position, (code, label, complaint, _share, _group) in enumerate(REASONS):
            ReasonCode.objects.get_or_create(
                code=code,
                defaults={"label": label, "is_complaint": complaint, "position": position},
            )
        # About nine tenths of what the remedies cost in a month: the dashboard shows a share.
        monthly = Decimal(max(1000, tickets)) * Decimal("0.9")
        EscalationPolicy.objects.get_or_create(
            defaults={
                "monthly_budget_amount": monthly.quantize(Decimal(1)),
                "budget_currency": currency,
            }
        )
        for kind, limit in AGENT_LIMITS.items():
            for role, cap in ((Role.AGENT, limit), (Role.SUPERVISOR, limit * 10)):
                RemedyLimit.objects.get_or_create(
                    role=role, kind=kind, currency=currency, defaults={"per_grant_max_amount": cap}
                )
    return Cast(
        tenant=tenant,
        currency=currency,
        agents=agents,
        supervisors=[users[f"{slug}-supervisor-{n}"] for n in range(2)],
        groups=groups,
        skus=catalogue(seed),
    )


def ensure_members(tenant: Tenant, people: list[tuple[str, str]]) -> dict[str, int]:
    """User ids by username; users and memberships created where missing (no password: sign in
    with ``manage.py changepassword`` to look around)."""
    User = get_user_model()
    names = [name for name, _role in people]
    existing = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    missing = [User(username=name, email=f"{name}@bench.example") for name in names]
    missing = [user for user in missing if user.username not in existing]
    for user in missing:
        user.set_unusable_password()
    User.objects.bulk_create(missing)
    users = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    members = set(Membership.objects.filter(tenant=tenant).values_list("user_id", flat=True))
    Membership.objects.bulk_create(
        Membership(tenant=tenant, user_id=users[name], role=role, display_name=name)
        for name, role in people
        if users[name] not in members
    )
    return users


def catalogue(seed: int) -> list[Sku]:
    """SKUs of every product, each from a supplier; a few SKUs fail far more often."""
    rng = random.Random(f"{seed}:catalogue")
    skus = []
    for key, name, category, price in PRODUCTS:
        for variant in range(SKUS_PER_PRODUCT):
            supplier = rng.choice(SUPPLIERS)
            skus.append(
                Sku(
                    sku=f"{key.upper()}-{100 + variant * 10}",
                    product_name=name,
                    category=category,
                    supplier=supplier,
                    manufacturer=supplier.rsplit(" ", 1)[0],
                    price=Decimal(price + variant * 200),
                    defects=rng.choice([0.5, 0.8, 1, 1, 1, 1.2, 1.5, 4]),
                )
            )
    return skus


# --- One batch of tickets --------------------------------------------------------------------


class Batch:
    """The rows of tickets ``start``..``end - 1`` of a merchant that will have ``target``
    tickets, created in number order over the ``DAYS`` days before ``anchor``: each row a dict
    of the columns it sets (the same for every row of a table), per model."""

    def __init__(
        self,
        cast: Cast,
        ids: Ids,
        *,
        start: int,
        end: int,
        target: int,
        anchor: datetime,
        seed: int,
    ) -> None:
        self.cast, self.ids, self.anchor = cast, ids, anchor
        self.tenant_id = cast.tenant.pk
        self.rng = random.Random(f"{seed}:{cast.tenant.slug}:{start}")
        self.rows: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
        self.first = anchor - timedelta(days=DAYS)
        self.orders_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.lines_of: dict[int, list[Sku]] = {}
        # What search reads of each customer (name and email), segmented once.
        self.customer_words: dict[int, str] = {}
        self.by_group: dict[str, list[Agent]] = defaultdict(list)
        for agent in cast.agents:
            self.by_group[agent.group].append(agent)
        self.reason_weights = [share for _c, _l, _complaint, share, _g in REASONS]
        self.defect_weights = [sku.defects for sku in cast.skus]
        span = timedelta(days=DAYS).total_seconds()

        count = end - start
        self.customers = ids.block(Customer, max(1, math.ceil(count * CUSTOMERS_PER_TICKET)))
        for k, customer_id in enumerate(self.customers):
            self.add_customer(customer_id, f"c{start}-{k}@{cast.tenant.slug}.bench.example")
        self.order_prefix = f"B{start:07d}-"
        for _ in range(round(count * QUIET_ORDERS_PER_TICKET)):
            placed = self.first + timedelta(seconds=self.rng.uniform(0, span))
            self.add_order(self.rng.choice(self.customers), placed, self.rng.choice(cast.skus))
        for number in range(start, end):
            offset = span * (number - 1) / target + self.rng.uniform(0, 1800)
            created = min(self.first + timedelta(seconds=offset), anchor - timedelta(minutes=1))
            self.add_ticket(number, created)

    def add(self, model: type[models.Model], **values: Any) -> None:
        """A row of ``model``; its id drawn now if other rows point at it, else on insert."""
        row = {"tenant_id": self.tenant_id} | values
        if model in POINTED_AT:
            row["id"] = self.ids.take(model)
        self.rows[model].append(row)

    def before_now(self, moment: datetime) -> datetime:
        return min(moment, self.anchor - timedelta(seconds=30))

    def add_customer(self, customer_id: int, email: str) -> None:
        rng = self.rng
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(["", *GIVEN])
        self.rows[Customer].append(
            {
                "id": customer_id,
                "tenant_id": self.tenant_id,
                "name": name,
                "locale": "zh-hans",
                "is_vip": rng.random() < 0.03,
                "created_at": self.first,
            }
        )
        self.add(
            CustomerIdentity,
            customer_id=customer_id,
            kind=IdentityKind.EMAIL,
            value=email,
            created_at=self.first,
        )
        self.customer_words[customer_id] = f"{_words(name)} {_words(email)}"

    def add_order(self, customer_id: int, placed: datetime, sku: Sku) -> dict[str, Any]:
        extra = self.rng.choices([0, 1, 2], [70, 25, 5])[0]
        lines = [sku] + [self.rng.choice(self.cast.skus) for _ in range(extra)]
        total = sum((line.price for line in lines), Decimal(0))
        self.add(
            Order,
            customer_id=customer_id,
            number=f"{self.order_prefix}{len(self.rows[Order])}",
            status=Order.Status.DELIVERED,
            currency=self.cast.currency,
            total_amount=total,
            paid_amount=total,
            refunded_amount=Decimal(0),  # raised by the refunds below, before it is written
            placed_at=placed,
            shipped_at=placed + timedelta(days=1),
            delivered_at=placed + timedelta(days=3),
            carrier="SF Express",
        )
        order = self.rows[Order][-1]
        order["tracking_number"] = f"SF{self.tenant_id % 100:02d}{order['id']:010d}"
        for line in lines:
            self.add(
                OrderLine,
                order_id=order["id"],
                sku=line.sku,
                product_name=line.product_name,
                supplier=line.supplier,
                manufacturer=line.manufacturer,
                category=line.category,
                quantity=1,
                unit_price_amount=line.price,
            )
        self.lines_of[order["id"]] = lines
        self.orders_of[customer_id].append(order)
        return order

    def add_ticket(self, number: int, created: datetime) -> None:
        """One ticket and what hangs off it: its order, messages, escalation or remedy."""
        rng, anchor = self.rng, self.anchor
        code, _label, complaint, _share, group_key = rng.choices(REASONS, self.reason_weights)[0]
        customer_id = rng.choice(self.customers)
        order = None
        if rng.random() < 0.7:
            earlier = self.orders_of.get(customer_id)
            if earlier and rng.random() < 0.2:
                order = rng.choice(earlier)  # a repeat contact about the same order
            else:
                # Complaints come more often about the SKUs that fail more often.
                weights = self.defect_weights if complaint else None
                sku = rng.choices(self.cast.skus, weights)[0]
                order = self.add_order(
                    customer_id, created - timedelta(days=rng.uniform(1, 20)), sku
                )
        product = self.lines_of[order["id"]][0] if order else rng.choice(self.cast.skus)
        age = anchor - created
        if age > timedelta(days=14):
            status = rng.choices(["closed", "solved", "pending", "on_hold"], [55, 40, 3, 2])[0]
        elif age > timedelta(days=2):
            statuses = ["solved", "closed", "open", "pending", "on_hold"]
            status = rng.choices(statuses, [50, 20, 15, 10, 5])[0]
        else:
            status = rng.choices(["new", "open", "pending", "solved"], [25, 40, 15, 20])[0]
        priority = _weighted(rng, PRIORITIES)
        channel = _weighted(rng, CHANNELS)
        agent = None if status == "new" else rng.choice(self.by_group[group_key])
        urgent = priority in {"high", "urgent"}
        first_due = created + timedelta(hours=1 if urgent else 4)
        resolution_due = created + timedelta(hours=24 if urgent else 48)
        responded = solved = closed = None
        if agent is not None:
            responded = self.before_now(created + timedelta(minutes=rng.expovariate(1 / 120) + 2))
        if status in {"solved", "closed"}:
            took = timedelta(hours=rng.uniform(1, 120))
            solved = self.before_now(max(responded or created, created + took))
            if status == "closed":
                closed = solved + timedelta(days=3)
                if closed >= anchor:
                    status, closed = "solved", None
        first_breach = first_due if (responded or anchor) > first_due else None
        resolution_breach = resolution_due if (solved or anchor) > resolution_due else None
        # A second exchange: the customer writes again after the first answer, the agent
        # answers that too (before the ticket was solved).
        follow_up = follow_up_reply = None
        if responded is not None and rng.random() < FOLLOW_UP_SHARE:
            follow_up = self.before_now(responded + timedelta(hours=rng.uniform(0.5, 24)))
            follow_up_reply = self.before_now(follow_up + timedelta(hours=rng.uniform(0.2, 8)))
            if solved is not None:
                follow_up = min(follow_up, solved)
                follow_up_reply = min(follow_up_reply, solved)
        escalated = None
        chance = (0.04 * agent.escalates if agent else 0.02) if complaint else 0.005
        if rng.random() < chance:
            escalated = self.before_now(created + timedelta(minutes=rng.uniform(10, 2880)))
        moments = (created, responded, follow_up, follow_up_reply, solved, closed, escalated)
        subject = f"{product.product_name} #{number}"
        self.add(
            Ticket,
            number=number,
            subject=subject,
            status=status,
            priority=priority,
            channel=channel,
            customer_id=customer_id,
            order_id=order["id"] if order else None,
            assignee_id=agent.user_id if agent else None,
            group_id=self.cast.groups[group_key],
            reason_code=code,
            category=product.category,
            language="zh-hans" if rng.random() < 0.85 else "en",
            created_at=created,
            updated_at=max(moment for moment in moments if moment is not None),
            last_customer_message_at=follow_up or created,
            solved_at=solved,
            closed_at=closed,
            assigned_at=created + timedelta(minutes=1) if agent else None,
            first_response_due_at=first_due,
            resolution_due_at=resolution_due,
            first_responded_at=responded,
            first_response_breached_at=first_breach,
            resolution_breached_at=resolution_breach,
            escalated_at=escalated,
        )
        ticket_id = self.rows[Ticket][-1]["id"]
        self.add_audit(ticket_id, "ticket.opened", created, changes={"channel": channel})
        if agent is not None:
            self.add_audit(
                ticket_id,
                "ticket.assigned",
                created + timedelta(minutes=1),
                changes={"assignee": [None, agent.user_id]},
            )
        if solved is not None:
            self.add_audit(
                ticket_id,
                "ticket.status_changed",
                solved,
                changes={"status": ["open", "solved"]},
                actor_id=agent.user_id if agent else None,
            )
        template = rng.choice(INBOUND_ZH if rng.random() < 0.85 else INBOUND_EN)
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        order_number = order["number"] if order else ""
        body = template.format(product=product.product_name, order=order_number, phone=phone)
        message_id = f"{number}.{self.cast.tenant.slug}@seed.bench.example"
        self.add_message(
            ticket_id,
            channel,
            subject,
            body,
            created,
            customer_id=customer_id,
            external_id=message_id if channel == "email" else "",
        )
        # Ticket.search_text as tickets.search builds it, with the repeated parts segmented once.
        search = [_words(product.product_name), str(number), self.customer_words[customer_id]]
        if order:
            search.append(_words(f"{order_number} {order['tracking_number']}"))
        search.append(_words(template.format(product=product.product_name, order="", phone="")))
        if order and "{order}" in template:
            search.append(_words(order_number))
        if "{phone}" in template:
            search.append(phone)
        if responded:
            reply = rng.choice(REPLIES)
            self.add_message(ticket_id, channel, subject, reply, responded, agent_id=agent.user_id)
            search.append(_words(reply))
        if follow_up is not None and follow_up_reply is not None:
            text = rng.choice(FOLLOW_UPS)
            self.add_message(
                ticket_id, channel, f"Re: {subject}", text, follow_up, customer_id=customer_id,
                external_id=f"{number}.2.{self.cast.tenant.slug}@seed.bench.example"
                if channel == "email" else "",
            )  # fmt: skip
            answer = rng.choice(REPLIES)
            self.add_message(
                ticket_id, channel, subject, answer, follow_up_reply, agent_id=agent.user_id
            )
            search += [_words(text), _words(answer)]
        self.rows[Ticket][-1]["search_text"] = " ".join(word for word in search if word)
        if escalated is not None:
            self.add_escalation(ticket_id, customer_id, order, agent, group_key, escalated)
        elif complaint and agent is not None and rng.random() < 0.15:
            kind = _weighted(rng, REMEDY_KINDS)
            amount = self.remedy_amount(kind, order, within=AGENT_LIMITS[kind])
            if amount is None:
                kind = RemedyKind.GIFT
                amount = self.remedy_amount(kind, order, within=AGENT_LIMITS[kind])
            at = self.before_now(responded + timedelta(minutes=5))
            self.add_remedy(
                ticket_id, customer_id, order, kind, amount, agent.user_id, Role.AGENT, at
            )

    def add_audit(
        self,
        ticket_id: int,
        action: str,
        at: datetime,
        *,
        changes: dict[str, Any],
        actor_id: int | None = None,
    ) -> None:
        """An audit row on the ticket, as the services write one: the ticket page's history
        reads them, so a history query that scans the merchant's audit log shows here."""
        self.add(
            AuditEvent,
            actor_id=actor_id,
            actor_label="system" if actor_id is None else f"user {actor_id}",
            action=action,
            object_type="ticket",
            object_id=str(ticket_id),
            changes=changes,
            created_at=at,
        )

    def add_message(
        self,
        ticket_id: int,
        channel: str,
        subject: str,
        body: str,
        at: datetime,
        *,
        customer_id: int | None = None,
        agent_id: int | None = None,
        external_id: str = "",
    ) -> None:
        inbound = customer_id is not None
        # Every row of a table sets the same columns: external_id for all or for none.
        extra = {"external_id": external_id} if self.cast.message_ids else {}
        self.add(
            Message,
            **extra,
            ticket_id=ticket_id,
            direction=Message.Direction.INBOUND if inbound else Message.Direction.OUTBOUND,
            channel=channel,
            author_user_id=agent_id,
            author_customer_id=customer_id,
            subject=subject,
            body_text=body,
            delivery_state=Message.Delivery.RECEIVED if inbound else Message.Delivery.SENT,
            sent_at=None if inbound else at,
            created_at=at,
        )

    def remedy_amount(
        self,
        kind: str,
        order: dict[str, Any] | None,
        *,
        within: Decimal | None = None,
        above: Decimal | None = None,
    ) -> Decimal | None:
        """A plausible amount of ``kind`` for ``order``: at most ``within``, or more than
        ``above``; None when the kind needs an order and there is none, or no room on it."""
        rng = self.rng
        if kind == RemedyKind.GIFT:
            if within is not None:
                return _money(rng.uniform(5, float(within)))
            return _money(float(above) * rng.uniform(1.1, 3))
        if order is None:
            return None
        if kind == RemedyKind.FREE_ORDER:
            amount = order["total_amount"]
        elif within is not None:
            amount = _money(rng.uniform(10, float(within)))
        else:
            amount = _money(float(above) * rng.uniform(1.05, 3))
        if (within is not None and amount > within) or (above is not None and amount <= above):
            return None
        if kind in PAYS_OUT and amount > order["paid_amount"] - order["refunded_amount"]:
            return None
        return amount

    def add_remedy(
        self,
        ticket_id: int,
        customer_id: int,
        order: dict[str, Any] | None,
        kind: str,
        amount: Decimal,
        granted_by: int,
        role: str,
        at: datetime,
    ) -> int:
        if order is not None and kind in PAYS_OUT:
            order["refunded_amount"] += amount  # paid back never passes what was paid
        self.add(
            Remedy,
            ticket_id=ticket_id,
            customer_id=customer_id,
            order_id=order["id"] if order else None,
            kind=kind,
            amount=amount,
            currency=self.cast.currency,
            granted_by_id=granted_by,
            granted_role=role,
            idempotency_key=uuid.UUID(int=self.rng.getrandbits(128), version=4),
            execution=Remedy.Execution.EXECUTED,
            executed_at=at,
            created_at=at,
        )
        return self.rows[Remedy][-1]["id"]

    def add_escalation(
        self,
        ticket_id: int,
        customer_id: int,
        order: dict[str, Any] | None,
        agent: Agent | None,
        group_key: str,
        at: datetime,
    ) -> None:
        """The ticket's escalation; an over-limit one with its approval request and, once a
        supervisor approved it, what was given."""
        rng = self.rng
        trigger = _weighted(rng, TRIGGERS)
        if trigger in RAISED_BY_AGENT and agent is None:
            trigger = Trigger.CUSTOMER_REQUEST
        supervisor = rng.choice(self.cast.supervisors)
        still_open = self.anchor - at < timedelta(days=3) and rng.random() < 0.5
        resolved_at = None
        if not still_open:
            resolved_at = self.before_now(at + timedelta(hours=rng.uniform(0.5, 30)))
        approval_id = None
        if trigger == Trigger.OVER_LIMIT:
            kind = _weighted(rng, REMEDY_KINDS)
            amount = self.remedy_amount(kind, order, above=AGENT_LIMITS[kind])
            if amount is None:
                kind = RemedyKind.GIFT
                amount = self.remedy_amount(kind, order, above=AGENT_LIMITS[kind])
            state, granted, remedy_id = ApprovalRequest.State.PENDING, None, None
            if not still_open:
                state = rng.choices(["approved", "countered", "denied"], [60, 25, 15])[0]
                if state != "denied":
                    granted = amount if state == "approved" else _money(float(amount) * 0.6)
                    if (
                        kind in PAYS_OUT
                        and granted > order["paid_amount"] - order["refunded_amount"]
                    ):
                        granted = order["paid_amount"] - order["refunded_amount"]
                    remedy_id = self.add_remedy(
                        ticket_id, customer_id, order, kind, granted, supervisor,
                        Role.SUPERVISOR, resolved_at,
                    )  # fmt: skip
            self.add(
                ApprovalRequest,
                ticket_id=ticket_id,
                requested_by_id=agent.user_id,
                kind=kind,
                amount=amount,
                currency=self.cast.currency,
                order_id=order["id"] if order else None,
                note="Customer asks for more than I may give",
                refusal_limit="per_grant",
                refusal="The amount is above your per-grant limit",
                state=state,
                decided_by_id=None if still_open else supervisor,
                decided_at=resolved_at,
                granted_amount=granted,
                remedy_id=remedy_id,
                created_at=at,
            )
            approval_id = self.rows[ApprovalRequest][-1]["id"]
        self.add(
            Escalation,
            ticket_id=ticket_id,
            trigger=trigger,
            reason=ESCALATION_REASONS[trigger],
            raised_by_id=agent.user_id if agent and trigger in RAISED_BY_AGENT else None,
            agent_id=agent.user_id if agent else None,
            group_id=self.cast.groups[group_key],
            approval_request_id=approval_id,
            state=Escalation.State.OPEN if still_open else Escalation.State.RESOLVED,
            resolved_by_id=None if still_open else supervisor,
            resolved_at=resolved_at,
            resolution="" if still_open else "Settled with the customer",
            created_at=at,
        )


@functools.lru_cache(maxsize=4096)
def _words(text: str) -> str:
    return document_words(text)


def _weighted(rng: random.Random, choices: tuple[list, list]) -> Any:
    return rng.choices(choices[0], choices[1])[0]


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))


# --- Writing, planning, running ----------------------------------------------------------------


def write_batch(cast: Cast, batch: Batch, report: Report) -> None:
    """COPY a batch's rows in one transaction that carries the merchant in ``app.tenant_id``:
    row-level security admits each row only if it is the merchant's."""
    with tenancy.activate(cast.tenant), transaction.atomic(), connection.cursor() as cursor:
        # The backend sets app.tenant_id with this statement (helpdesk.db); COPY goes to
        # psycopg2 directly, past the backend, and runs in the same transaction.
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        carried = cursor.fetchone()[0]
        if carried != str(cast.tenant.pk):
            raise RuntimeError(f"the transaction carries tenant {carried!r}, not {cast.tenant.pk}")
        for model in MODELS:
            rows = batch.rows.get(model)
            if not rows:
                continue
            started = time.perf_counter()
            count = CopyTable(model, rows[0]).copy(cursor.cursor, rows)
            report.seconds[model._meta.db_table] += time.perf_counter() - started
            report.rows[model._meta.db_table] += count
        started = time.perf_counter()
    # Deferred foreign keys (and the same-tenant keys) are checked at commit.
    report.seconds["commit"] += time.perf_counter() - started


@dataclass(frozen=True)
class Job:
    """Tickets ``start``..``end - 1`` of the merchant ``slug``, which will have ``target``."""

    slug: str
    start: int
    end: int
    target: int


def plan(cast: Cast, target: int, batch: int) -> list[Job]:
    """The batches still missing: a committed batch is complete, so each range needs only
    what comes after its highest ticket number (from a run with a smaller ``--tickets``)."""
    jobs = []
    with tenancy.activate(cast.tenant):
        for start in range(1, target + 1, batch):
            end = min(start + batch, target + 1)
            highest = Ticket.objects.filter(number__gte=start, number__lt=end).aggregate(
                highest=Max("number")
            )["highest"]
            if highest is None or highest < end - 1:
                jobs.append(Job(cast.tenant.slug, (highest or start - 1) + 1, end, target))
    return jobs


def run_jobs(casts: dict[str, Cast], jobs: list[Job], anchor: datetime, seed: int) -> Report:
    """Generate and write ``jobs`` in this process."""
    report = Report()
    # A ticket draws about 1.5 ids of the tables rows point at (orders, customers, remedies).
    ids = Ids(block=max(64, min(20_000, 2 * max((job.end - job.start for job in jobs), default=1))))
    for job in jobs:
        cast = casts[job.slug]
        started = time.perf_counter()
        with tenancy.activate(cast.tenant):
            batch = Batch(
                cast, ids, start=job.start, end=job.end, target=job.target, anchor=anchor, seed=seed
            )
        report.seconds["python"] += time.perf_counter() - started
        write_batch(cast, batch, report)
        report.tickets_created += job.end - job.start
        report.batches += 1
    return report


def _worker(
    casts: dict[str, Cast], jobs: list[Job], anchor: datetime, seed: int, done: Any
) -> None:
    """A forked process: its share of the batches, on its own connection."""
    try:
        for job in jobs:
            done.put(("batch", run_jobs(casts, [job], anchor, seed)))
    except BaseException as exc:
        done.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        connections.close_all()


def run_parallel(
    casts: dict[str, Cast], jobs: list[Job], anchor: datetime, options: Options
) -> Report:
    """Run ``jobs`` in ``options.workers`` forked processes (COPY keeps one core busy with
    PostgreSQL while another builds the next batch); a progress bar on stderr."""
    from tqdm import tqdm

    report = Report()
    total = sum(job.end - job.start for job in jobs)
    bar = tqdm(total=total, unit="ticket", disable=not options.progress or not sys.stderr.isatty())
    workers = min(options.workers, len(jobs))
    if workers <= 1:
        for job in jobs:
            report.add(run_jobs(casts, [job], anchor, options.seed))
            bar.update(job.end - job.start)
        bar.close()
        return report
    connections.close_all()  # a forked child must not share the parent's connection
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    processes = [
        context.Process(target=_worker, args=(casts, jobs[n::workers], anchor, options.seed, done))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in jobs:
            kind, result = done.get()
            if kind == "error":
                raise SystemExit(f"a generator process failed: {result}")
            report.add(result)
            bar.update(result.tickets_created)
    finally:
        bar.close()
        for process in processes:
            process.join()
    return report


def delete_rows(tenant: Tenant) -> int:
    """Delete the merchant's rows from every tenant-owned table but the append-only audit log;
    the merchant, its members and their accounts stay. Returns the rows deleted."""
    deleted = 0
    with tenancy.activate(tenant), transaction.atomic(), connection.cursor() as cursor:
        for table, append_only in tenant_owned_tables():
            if not append_only:
                # Row-level security limits it to the merchant already; the WHERE says so too.
                cursor.execute(f'DELETE FROM "{table}" WHERE tenant_id = %s', [tenant.pk])
                deleted += cursor.rowcount
    Tenant.objects.filter(pk=tenant.pk).update(last_ticket_number=0)
    return deleted


def analyze(tables: Iterable[str]) -> None:
    """Fresh planner statistics: ANALYZE is the tables' owner's, so it runs as the owner role
    (``DATABASE_MIGRATE_URL``) where one is set."""
    with connected_as_owner(connection), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'ANALYZE "{table}"')


def database_size_mb() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return round(cursor.fetchone()[0] / 2**20, 1)


def generate(options: Options) -> dict[str, object]:
    """Create or complete the bench merchants of ``options``; the figures of the run."""
    if connection.vendor != "postgresql":
        raise SystemExit("bench.generate writes with PostgreSQL's COPY: set DATABASE_URL")
    started = time.perf_counter()
    anchor = timezone.now().astimezone(UTC)
    casts, jobs = {}, []
    sizes = tenant_sizes(options.tickets, options.tenants)
    for n, (slug, target) in enumerate(zip(tenant_slugs(options), sizes, strict=True)):
        existing = Tenant.objects.filter(slug=slug).first()
        if options.fresh and existing is not None:
            delete_started = time.perf_counter()
            deleted = delete_rows(existing)
            seconds = time.perf_counter() - delete_started
            print(f"deleted {deleted} rows of {slug} in {seconds:.1f} s", file=sys.stderr)
        currency = "USD" if n % 2 else "CNY"  # both in the same tables: a leak would show
        cast = ensure_cast(slug, target, options.seed, currency=currency)
        cast.message_ids = options.message_ids
        casts[slug] = cast
        jobs += plan(cast, target, options.batch)
    report = run_parallel(casts, jobs, anchor, options)
    for cast in casts.values():
        with tenancy.activate(cast.tenant):
            highest = Ticket.objects.aggregate(highest=Max("number"))["highest"] or 0
        Tenant.objects.filter(pk=cast.tenant.pk, last_ticket_number__lt=highest).update(
            last_ticket_number=highest
        )
    generated = time.perf_counter() - started
    analyze_seconds = 0.0
    if options.analyze and report.tickets_created:
        analyze_started = time.perf_counter()
        analyze(model._meta.db_table for model in MODELS)
        analyze_seconds = time.perf_counter() - analyze_started
    with tenancy.activate(casts[options.tenant].tenant):
        tickets = Ticket.objects.count()
    smallest = list(casts)[sizes.index(min(sizes))]
    written = sum(report.rows.values())
    results: dict[str, object] = {
        "bench_tenant": options.tenant,
        "bench_tenants": ",".join(casts),
        "database": connection.settings_dict["NAME"],
        "tickets": tickets,
        "tenants": len(casts),
        "tickets_all_tenants": sum(sizes),
        "tickets_smallest_tenant": min(sizes),
        "smallest_tenant": smallest,
        "tickets_created": report.tickets_created,
        "batches": report.batches,
        "workers": min(options.workers, max(1, len(jobs))),
    }
    for model in MODELS:
        table = model._meta.db_table
        results[f"rows_{table}"] = report.rows.get(table, 0)
    for model in MODELS:
        table = model._meta.db_table
        results[f"copy_seconds_{table}"] = round(report.seconds.get(table, 0.0), 2)
    results |= {
        "commit_seconds": round(report.seconds.get("commit", 0.0), 2),
        "python_seconds": round(report.seconds.get("python", 0.0), 2),
        "rows_written": written,
        "generate_seconds": round(generated, 1),
        "rows_per_second": round(written / generated) if generated else 0,
        "tickets_per_second": round(report.tickets_created / generated) if generated else 0,
        "analyze_seconds": round(analyze_seconds, 1),
        "database_size_mb": database_size_mb(),
    }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tickets", type=int, default=Options.tickets, help="tickets of all the merchants"
    )
    parser.add_argument(
        "--tenant", default=Options.tenant, help="slug of the bench merchant (the largest)"
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=1,
        help="merchants sharing --tickets: the first holds half, the others a Zipf share of the rest",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--fresh", action="store_true", help="delete the merchants' rows first")
    parser.add_argument("--workers", type=int, default=Options.workers, help="generator processes")
    parser.add_argument("--batch", type=int, default=Options.batch, help="tickets per transaction")
    parser.add_argument("--no-analyze", action="store_true", help="skip ANALYZE afterwards")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    if args.tickets < 1 or args.tenants < 1 or args.workers < 1 or args.batch < 1:
        parser.error("--tickets, --tenants, --workers and --batch must be >= 1")
    options = Options(
        tickets=args.tickets,
        tenant=args.tenant,
        tenants=args.tenants,
        seed=args.seed,
        fresh=args.fresh,
        workers=args.workers,
        batch=args.batch,
        analyze=not args.no_analyze,
        progress=not args.no_progress,
    )
    for name, value in generate(options).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
