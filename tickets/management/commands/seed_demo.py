"""Create (or top up) two demo merchants so a newcomer sees a living helpdesk."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from channels_in.models import ChannelAccount, Mailbox
from escalation import policies
from escalation.models import EscalationPolicy, RemedyKind, RemedyLimit
from escalation.policy_settings import update_escalation_policy
from helpdesk import tenancy
from helpdesk.models import Membership, Role, Tenant
from helpdesk.permissions import SYSTEM, acting_agent_for
from tickets import reasons, search, services
from tickets.assignment import route_new_ticket
from tickets.management.demo_history import HISTORY, HistorySeeder
from tickets.models import (
    Channel,
    Group,
    GroupHoliday,
    GroupMember,
    IdentityKind,
    Message,
    Order,
    OrderLine,
    ReasonCode,
    RoutingStrategy,
    ServiceTarget,
    Ticket,
)

DEMO_PASSWORD = "helpdesk-demo"
# The platform operator: a superuser who sees every merchant and the admin.
OPERATOR_USERNAME = "operator"

R = RemedyKind
# What each role may give without approval, in the merchant's currency: (role, remedy, most per
# grant, most share of the order in %, most per person per day, most per customer in the period
# of 30 days); None is no cap of that sort. For free orders the per-grant cap is the largest
# order value that may be made free. A remedy or role not listed may give nothing.
ACME_LIMITS = [
    (Role.AGENT, R.GIFT, "100", None, "1000", "200"),
    (Role.AGENT, R.RESHIP, "500", None, "2000", "1000"),
    (Role.AGENT, R.PRICE_PROTECTION, "200", "30", "1000", "300"),
    (Role.AGENT, R.REFUND, "300", "50", "2000", "500"),
    (Role.SUPERVISOR, R.GIFT, "300", None, "3000", "600"),
    (Role.SUPERVISOR, R.RESHIP, "2000", None, "10000", "4000"),
    (Role.SUPERVISOR, R.PRICE_PROTECTION, "1000", "50", "5000", "1500"),
    (Role.SUPERVISOR, R.REFUND, "1000", "100", "10000", "2000"),
    (Role.SUPERVISOR, R.FREE_ORDER, "200", None, "1000", "400"),
    (Role.ADMIN, R.GIFT, "500", None, "5000", "1000"),
    (Role.ADMIN, R.RESHIP, "5000", None, "20000", "10000"),
    (Role.ADMIN, R.PRICE_PROTECTION, "2000", None, "10000", "3000"),
    (Role.ADMIN, R.REFUND, "5000", None, "30000", "10000"),
    (Role.OWNER, R.GIFT, "1000", None, None, None),
    (Role.OWNER, R.RESHIP, None, None, None, None),
    (Role.OWNER, R.PRICE_PROTECTION, None, None, None, None),
    (Role.OWNER, R.REFUND, None, None, None, None),
]
GLOBEX_LIMITS = [
    (Role.AGENT, R.GIFT, "15", None, "150", "30"),
    (Role.AGENT, R.REFUND, "50", "50", "300", "100"),
    (Role.SUPERVISOR, R.GIFT, "50", None, "500", "100"),
    (Role.SUPERVISOR, R.REFUND, "200", "100", "1500", "400"),
    (Role.SUPERVISOR, R.FREE_ORDER, "40", None, "200", "80"),
    (Role.OWNER, R.REFUND, None, None, None, None),
]

# Why customers write, in the merchant's order: (code, label, a complaint?). Complaint tickets
# are what the escalation rate counts.
ACME_REASONS = [
    ("damaged", "Arrived damaged 到货破损", True),
    ("wrong_item", "Wrong item sent 发错货", True),
    ("late_delivery", "Late delivery 物流延迟", True),
    ("not_as_described", "Not as described 与描述不符", True),
    ("opened_as_new", "Used sold as new 二手当新品", True),
    ("defective", "Stopped working 使用故障", True),
    ("price_protection", "Price protection 价保", False),
    ("pre_sales", "Pre-sales question 售前咨询", False),
    ("invoice", "Invoice 发票", False),
]
GLOBEX_REASONS = [
    ("damaged", "Arrived damaged", True),
    ("defective", "Defective", True),
    ("late_delivery", "Late delivery", True),
    ("pre_sales", "Pre-sales question", False),
]

MERCHANTS: list[dict[str, Any]] = [
    {
        "slug": "acme",
        "name": "Acme 家电",
        "currency": "CNY",
        "locale": "zh-hans",
        "time_zone": "Asia/Shanghai",
        "region": "CN",
        "people": [
            ("acme-owner", Role.OWNER, "Chen Owner 陈总"),
            ("acme-supervisor", Role.SUPERVISOR, "Wang Supervisor 王主管"),
            ("acme-agent-li", Role.AGENT, "Li Agent 李客服"),
            ("acme-agent-zhou", Role.AGENT, "Zhou Agent 周客服"),
        ],
        # Each group: its routing, hours and the members besides the default group's agents.
        "groups": {
            "售前 Pre-sales": {
                "strategy": RoutingStrategy.ROUND_ROBIN,
                "categories": ["Product questions", "产品咨询"],
                "always_open": False,
                "weekly_hours": [[["09:00", "21:00"]]] * 6 + [[]],
                "holidays": [(date(2027, 1, 1), "元旦"), (date(2027, 2, 6), "春节")],
                "members": ["acme-agent-zhou"],
            },
            "售后 After-sales": {},
            "English desk": {"languages": ["en"], "members": ["acme-agent-li"]},
            "Friendly 亲切": {
                "persona": "friendly",
                "persona_description": "耐心细致，慢慢讲 Patient and warm",
                "members": ["acme-agent-zhou"],
            },
        },
        # New tickets land here and the merchant's agents are its members.
        "default_group": "售后 After-sales",
        # Minutes of business hours: (first response, resolution) per priority.
        "targets": {
            "urgent": (15, 240),
            "high": (60, 480),
            "normal": (120, 1440),
            "low": (480, 2880),
        },
        "limits": ACME_LIMITS,
        "reasons": ACME_REASONS,
        # The monthly remedy budget the supervisor dashboard compares spending with.
        "budget": ("20000", "CNY"),
        "customers": [
            ("李伟", "li.wei@example.cn", "+8613800138000", None),
            ("王芳", "wangfang@example.cn", None, "oWx_demo_openid_wangfang"),
            ("张敏", "zhang.min@example.cn", "+8613912345678", None),
            ("Emily Carter", "emily.carter@example.com", None, None),
        ],
        "products": [
            (
                "FT-HOOD-900",
                "吸油烟机 Range hood JQ01",
                "Ningbo Fotile Supply",
                "Fotile",
                "3299.00",
            ),
            ("FT-STOVE-2", "燃气灶 Gas hob 2-burner", "Ningbo Fotile Supply", "Fotile", "1599.00"),
            ("AC-KETTLE-1", "电水壶 Kettle 1.7L", "Foshan Kitchen Co.", "Acme", "199.00"),
        ],
        "tickets": [
            (
                "吸油烟机安装后噪音很大",
                Channel.EMAIL,
                Ticket.Status.NEW,
                "我家的吸油烟机安装后噪音很大，订单号 {order}，请尽快处理。",
                "not_as_described",
            ),
            (
                "Where is my order {order}?",
                Channel.EMAIL,
                Ticket.Status.OPEN,
                "Hi, my order {order} still shows as shipped after 9 days. Can you check the tracking?",
                "late_delivery",
            ),
            (
                "燃气灶点不着火",
                Channel.WECHAT,
                Ticket.Status.PENDING,
                "燃气灶右边的火点不着，已经试过换电池。",
                "defective",
            ),
            (
                "电水壶漏水，要求退款",
                Channel.PHONE,
                Ticket.Status.OPEN,
                "客户来电：电水壶底部漏水，要求退款。",
                "defective",
            ),
            (
                "发票抬头开错了",
                Channel.CHAT,
                Ticket.Status.SOLVED,
                "你好，发票抬头开错了，能重开吗？",
                "invoice",
            ),
        ],
    },
    {
        "slug": "globex",
        "name": "Globex Outdoor",
        "currency": "USD",
        "locale": "en",
        "time_zone": "America/New_York",
        "region": "US",
        "people": [
            ("globex-owner", Role.OWNER, "Grace Owner"),
            ("globex-supervisor", Role.SUPERVISOR, "Sam Supervisor"),
            ("globex-agent", Role.AGENT, "Alex Agent"),
        ],
        "groups": {
            "Support": {
                "always_open": False,
                "weekly_hours": [[["09:00", "17:00"]]] * 5 + [[], []],
                "holidays": [(date(2026, 12, 25), "Christmas Day"), (date(2027, 1, 1), "New Year")],
                "out_of_hours_reply": "Thanks for writing! Our team is off the trail right now "
                "and will answer from {opens_at}.",
            },
        },
        "default_group": "Support",
        "targets": {
            "urgent": (30, 240),
            "high": (60, 480),
            "normal": (240, 2400),
            "low": (480, 4800),
        },
        "limits": GLOBEX_LIMITS,
        "reasons": GLOBEX_REASONS,
        "customers": [
            ("James Wilson", "james.wilson@example.com", "+12025550143", None),
            ("刘洋", "liu.yang@example.com", None, None),
        ],
        "products": [
            ("GX-TENT-4", "Trail tent, 4 person", "Hangzhou Outdoor Mfg", "Globex", "249.00"),
            ("GX-LAMP-1", "Camping lantern", "Shenzhen Lighting Ltd", "Globex", "39.90"),
        ],
        "tickets": [
            (
                "Tent pole snapped on first use",
                Channel.EMAIL,
                Ticket.Status.OPEN,
                "The pole of the tent from order {order} snapped on the first night.",
                "defective",
            ),
            (
                "帐篷什么时候发货？",
                Channel.CHAT,
                Ticket.Status.NEW,
                "请问订单 {order} 什么时候发货？",
                "pre_sales",
            ),
        ],
    },
]


class Command(BaseCommand):
    help = "Create the demo merchants, people, customers, orders and tickets (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        logins = []
        for spec in MERCHANTS:
            logins += self.seed_merchant(spec)
            self.check_alerts(spec)
        # The demo history is written without its search text: found by search like the rest.
        call_command("rebuild_search", empty_only=True, stdout=StringIO())
        operator = self.seed_operator()
        self.stdout.write(self.style.SUCCESS("Demo data is ready. Sign in at /login/ with:"))
        for username, tenant, role in logins:
            self.stdout.write(f"  {username:<20} {DEMO_PASSWORD}   ({role} of {tenant})")
        if operator.is_superuser:
            self.stdout.write(
                f"  {operator.username:<20} {DEMO_PASSWORD}   "
                "(platform operator: every merchant, and /admin/)"
            )
        else:  # someone made an ordinary "operator" account; never promote it behind their back
            self.stdout.write(
                self.style.WARNING(f"  {operator.username!r} exists and is not a superuser")
            )
        self.stdout.write("Default groups (new tickets land there):")
        for spec in MERCHANTS:
            tenant = Tenant.objects.get(slug=spec["slug"])
            with tenancy.activate(tenant):
                group = Group.objects.filter(is_default=True).order_by("pk").first()
                members = (
                    ", ".join(group.members.order_by("username").values_list("username", flat=True))
                    if group
                    else ""
                )
            self.stdout.write(f"  {tenant.name}: {group or '-'} ({members or 'no members'})")
        if settings.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":
            self.stdout.write(
                f"Outgoing mail is written to {settings.EMAIL_FILE_PATH}; read it at /dev/outbox/."
            )

    def check_alerts(self, spec: dict[str, Any]) -> None:
        """What Celery beat does every few minutes in production (``make run`` has no beat):
        the history's escalation and defect rates raise their alerts, mailed to the outbox."""
        from escalation import alerts

        with tenancy.activate(Tenant.objects.get(slug=spec["slug"])):
            alerts.check_escalation_rate()
            alerts.check_defect_rates()

    def seed_operator(self) -> AbstractUser:
        operator, created = get_user_model().objects.get_or_create(
            username=OPERATOR_USERNAME,
            defaults={
                "email": "operator@helpdesk.example",
                "is_staff": True,
                "is_superuser": True,
            },
        )
        if created:
            operator.set_password(DEMO_PASSWORD)
            operator.save()
        return operator

    @transaction.atomic
    def seed_merchant(self, spec: dict[str, Any]) -> list[tuple[str, str, str]]:
        tenant, _ = Tenant.objects.get_or_create(
            slug=spec["slug"],
            defaults={
                "name": spec["name"],
                "default_currency": spec["currency"],
                "locale": spec["locale"],
                "time_zone": spec["time_zone"],
                "phone_region": spec["region"],
            },
        )
        users = {}
        agents: list[AbstractUser] = []
        logins = []
        for username, role, display in spec["people"]:
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"email": f"{username}@{spec['slug']}.example"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            Membership.objects.get_or_create(
                tenant=tenant, user=user, defaults={"role": role, "display_name": display}
            )
            users[role] = users.get(role) or user
            if role == Role.AGENT:
                agents.append(user)
            logins.append((username, tenant.name, role.label))
        with tenancy.activate(tenant):
            self.seed_default_group(spec, agents)
            self.seed_limits(spec)
            self.seed_reasons(spec)
            self.seed_macros()
            self.seed_escalation_policy(spec)
            self.seed_tenant_data(tenant, spec, users, agents)
        return logins

    def seed_default_group(self, spec: dict[str, Any], agents: list[AbstractUser]) -> None:
        if not Group.objects.exists():  # else the merchant arranged its own groups; keep them
            for name, config in spec["groups"].items():
                fields = {k: v for k, v in config.items() if k not in {"holidays", "members"}}
                group = Group.objects.create(name=name, **fields)
                for day, holiday in config.get("holidays", []):
                    GroupHoliday.objects.create(group=group, date=day, name=holiday)
                for username in config.get("members", []):
                    GroupMember.objects.create(
                        group=group, user=get_user_model().objects.get(username=username)
                    )
        group = Group.objects.filter(is_default=True).order_by("pk").first()
        if group is None:  # else the merchant already chose a default, and keeps it
            group = Group.objects.get(name=spec["default_group"])
            Group.objects.filter(pk=group.pk).update(is_default=True)
        for agent in agents:
            GroupMember.objects.get_or_create(group=group, user=agent)
        if not ServiceTarget.objects.exists():
            for priority, (first, resolution) in spec["targets"].items():
                ServiceTarget.objects.create(
                    priority=priority, first_response_minutes=first, resolution_minutes=resolution
                )

    def seed_limits(self, spec: dict[str, Any]) -> None:
        if RemedyLimit.objects.exists():  # the merchant set its own; keep them
            return
        for role, kind, per_grant, share, per_day, per_customer in spec["limits"]:
            policies.set_limit(
                acting_agent=SYSTEM,
                kind=kind,
                currency=spec["currency"],
                role=role,
                per_grant_max_amount=per_grant,
                order_share_max_percent=share,
                per_agent_day_max_amount=per_day,
                per_customer_period_max_amount=per_customer,
            )

    def seed_reasons(self, spec: dict[str, Any]) -> None:
        if ReasonCode.objects.exists():  # the merchant keeps its own list
            return
        for position, (code, label, complaint) in enumerate(spec["reasons"]):
            reasons.save_reason_code(
                acting_agent=SYSTEM,
                code=code,
                label=label,
                is_complaint=complaint,
                position=position * 10,
            )

    def seed_macros(self) -> None:
        from tickets.macros import save_macro
        from tickets.models import Macro

        if Macro.objects.exists():  # the merchant keeps its own canned replies
            return
        for name, body in (
            (
                "物流查询 Where is my parcel",
                "{{ customer.name }}您好，您的订单 {{ order.number }} 已由 {{ order.carrier }} "
                "发出，运单号 {{ order.tracking_number }}，一般 2-3 天送达。\n\n{{ agent.name }}",
            ),
            (
                "Shipping update",
                "Hi {{ customer.name }},\n\nyour order {{ order.number }} is on its way with "
                "{{ order.carrier }}, tracking number {{ order.tracking_number }}.\n\n"
                "Best regards,\n{{ agent.name }}",
            ),
            (
                "安装预约 Installation visit",
                "{{ customer.name }}您好，关于工单 #{{ ticket.number }}，我们会安排师傅在 48 "
                "小时内联系您预约上门安装。如有问题请直接回复本邮件。\n\n{{ agent.name }}",
            ),
        ):
            save_macro(acting_agent=SYSTEM, name=name, body=body)

    def seed_escalation_policy(self, spec: dict[str, Any]) -> None:
        if EscalationPolicy.objects.exists() or "budget" not in spec:  # keep the merchant's own
            return
        amount, currency = spec["budget"]
        update_escalation_policy(
            acting_agent=SYSTEM, monthly_budget_amount=amount, budget_currency=currency
        )

    def seed_tenant_data(
        self, tenant: Tenant, spec: dict[str, Any], users: dict, agents: list[AbstractUser]
    ) -> None:
        account, _ = ChannelAccount.objects.get_or_create(
            kind=Channel.EMAIL, name="Support mailbox"
        )
        Mailbox.objects.get_or_create(
            account=account,
            defaults={"address": f"support@{spec['slug']}.example", "from_name": tenant.name},
        )
        fresh = not Ticket.objects.exists()
        if spec["slug"] in HISTORY:
            # The past 30 days first, so ticket numbers follow time; seeded once.
            HistorySeeder(
                tenant=tenant,
                history=HISTORY[spec["slug"]],
                agents=agents,
                supervisor=users[Role.SUPERVISOR],
            ).seed({group.name: group for group in Group.objects.all()})
        if not fresh:
            return
        now = timezone.now()
        orders = []
        for index, (name, email, phone, openid) in enumerate(spec["customers"]):
            customer = services.resolve_customer(kind=IdentityKind.EMAIL, value=email, name=name)
            if phone:
                services.add_identity(
                    acting_agent=SYSTEM, customer=customer, kind="phone", value=phone
                )
            if openid:
                services.add_identity(
                    acting_agent=SYSTEM, customer=customer, kind="wechat", value=openid
                )
            sku, product, supplier, maker, price = spec["products"][index % len(spec["products"])]
            placed = now - timedelta(days=12 - index)
            order = Order.objects.create(
                customer=customer,
                number=f"{spec['slug'].upper()}-{202611000 + index}",
                status=Order.Status.SHIPPED,
                currency=spec["currency"],
                total_amount=Decimal(price),
                paid_amount=Decimal(price),
                placed_at=placed,
                shipped_at=placed + timedelta(days=1),
                carrier="SF Express" if spec["currency"] == "CNY" else "UPS",
                tracking_number=f"SF{1000000000 + index}",
            )
            OrderLine.objects.create(
                order=order,
                sku=sku,
                product_name=product,
                supplier=supplier,
                manufacturer=maker,
                quantity=1,
                unit_price_amount=Decimal(price),
            )
            orders.append(order)
        agent = users.get(Role.AGENT)
        for index, (subject, channel, status, body, reason) in enumerate(spec["tickets"]):
            order = orders[index % len(orders)]
            ticket = services.open_ticket(
                acting_agent=SYSTEM,
                customer=order.customer,
                subject=subject.format(order=order.number),
                channel=channel,
                order=order,
                reason_code=reason,
            )
            route_new_ticket(ticket=ticket)
            message = Message.objects.create(
                ticket=ticket,
                direction=Message.Direction.INBOUND,
                channel=channel,
                author_customer=order.customer,
                subject=ticket.subject,
                body_text=body.format(order=order.number),
                full_text=body.format(order=order.number),
            )
            search.note_message(ticket, message)  # found by its words (tickets.search)
            if status != Ticket.Status.NEW:
                services.assign_ticket(acting_agent=SYSTEM, ticket=ticket, assignee=agent)
                services.change_ticket_status(
                    acting_agent=acting_agent_for(agent, tenant), ticket=ticket, status=status
                )
        first = Ticket.objects.order_by("number").first()
        if first is not None:
            services.add_note(
                acting_agent=acting_agent_for(users[Role.SUPERVISOR], tenant),
                ticket=first,
                text="Check whether this model has a known noise issue with the supplier.",
            )
