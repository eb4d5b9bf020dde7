"""Inbound mail and the ticket list side by side with django-helpdesk 2.6.1, in the same run.

Run from the repository root with the project's virtualenv, on the bench database
(``make bench-peer``). It installs django-helpdesk into a virtualenv of its own
(``.bench/peer-venv``) when missing, seeds both sides with ``--seed-tickets`` tickets once, then
runs the phases (``--phases``):

- ``ingest``: for every round, fresh mail that each side ingests one message at a time in its
  own process: the project's worker path (``store_raw`` + ``process_raw``) and django-helpdesk's
  per-message mail path (what ``get_email`` runs for each fetched mail); then a check of what
  every mail became on both sides.
- ``list``: the agent's ticket list and a search, whole requests through Django's test client,
  each side in its own process: the project's default inbox (bench/inbox.py's helpers) and
  django-helpdesk's list page with the DataTables request that fills it.

Results go to stdout as ``name: value`` lines and to a JSON file; progress to stderr. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import quopri
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.files import pdf, png  # noqa: E402
from bench.stats import percentile  # noqa: E402

PEER_DIR = REPO / "bench" / "peer"
PEER_REQUIREMENTS = PEER_DIR / "requirements.txt"
SUPPORT_ADDRESS = "support@bench.example"
PLACEHOLDER = re.compile(rb"@@(TOKEN|MSGID|ADDR):([sm])(\d+)@@")
SIDES = ("project", "peer")
PHASES = ("ingest", "list")
# The search both lists are timed with: a common Chinese word (bench/inbox.py's search_chinese).
LIST_SEARCH = "破损"
# Past this relative difference in tickets the two lists do not read the same size.
LIST_SIZE_TOLERANCE = 0.05
CHECKS = ("stored", "threading", "subject", "chinese_body", "body", "attachments")

# The mix (weights sum to 1). Every new conversation comes from a sender of its own, so a new
# mail must make a new ticket on both sides and a reply must land on the ticket it names.
MIX = {
    "english": 0.14,  # plain English, 7bit
    "chinese_8bit": 0.20,  # GBK / GB2312, Content-Transfer-Encoding 8bit, as Foxmail sends it
    "chinese_base64": 0.08,  # GBK / GB2312, base64
    "utf8_base64": 0.08,  # UTF-8 Chinese, base64
    "utf8_qp": 0.08,  # UTF-8 Chinese, quoted-printable
    "html": 0.12,  # multipart/alternative: text and HTML
    "attachment": 0.10,  # text with one or two files (PDF, PNG)
    "reply_header": 0.08,  # In-Reply-To / References an earlier mail of the round
    "reply_token": 0.04,  # the ticket's token in the subject, no reply headers
    "seeded_header": 0.04,  # In-Reply-To a seeded ticket's first mail, from its customer
    "seeded_token": 0.04,  # a seeded ticket's token in the subject, from its customer
}

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛"
ENGLISH_NAMES = ["Emily Carter", "James Smith", "Olivia Brown", "Liam Nguyen", "Ava Garcia"]
PRODUCTS_ZH = ["吸油烟机", "燃气灶", "电水壶", "洗碗机", "消毒柜", "电饭煲", "空气炸锅", "热水器"]
PRODUCTS_EN = ["range hood", "gas hob", "kettle", "dishwasher", "rice cooker", "air fryer"]
SUBJECTS_ZH = [
    "订单号 {order} 的{product}还没到货",
    "{product}安装后噪音很大",
    "申请退款：订单 {order}",
    "{product}收到时外壳有破损",
    "发票开具问题（订单 {order}）",
]
SENTENCES_ZH = [
    "您好，我上周在贵店购买了一台{product}，订单号是{order}。",
    "快递显示已经签收，但是我并没有收到包裹，麻烦帮忙查一下物流。",
    "机器用了三天就出现异响，声音非常大，影响正常使用。",
    "请问可以上门维修吗？我周末都在家。",
    "如果不能维修，希望能够退货退款，谢谢！",
    "另外想问一下保修期是多久，需要保留发票吗？",
]
SUBJECTS_EN = [
    "Where is my order {order}?",
    "The {product} arrived damaged",
    "Refund request for order {order}",
    "Question about the warranty of my {product}",
]
SENTENCES_EN = [
    "Hello, I bought a {product} from your shop last week (order {order}).",
    "The tracking page says it was delivered, but nothing arrived.",
    "It makes a loud rattling noise whenever I switch it on.",
    "Could you send a technician, or should I return it?",
    "I would prefer a refund if a repair takes more than a week.",
]
FOLLOW_UP_ZH = "请问有进展了吗？我还在等待回复。"
FOLLOW_UP_EN = "Any news on this? I am still waiting for an answer."


@dataclass(frozen=True)
class Mail:
    """One generated mail and what each side must make of it."""

    index: int
    kind: str
    raw: bytes  # may hold @@TOKEN/MSGID/ADDR:<ref>@@ placeholders each side fills in
    message_id: str  # without the angle brackets
    # None: a new ticket; "m<i>": the ticket the round's mail i became; "s<k>": seeded ticket k.
    thread: str | None
    subject: str  # a new ticket's subject as sent, decoded ("" for replies)
    body: str  # text the stored message must contain
    attachments: int  # files attached

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"raw": base64.b64encode(self.raw).decode()}


@dataclass(frozen=True)
class Conversation:
    """A new mail of the round that later ones reply to."""

    index: int
    message_id: str
    name: str
    address: str
    subject: str
    text: str
    chinese: bool


class PeerMix:
    """The side-by-side mail mix of one round, deterministic for a seed (Message-IDs and
    senders carry ``run``, so no two rounds or runs share one)."""

    def __init__(self, *, seed: int, run: str, seed_tickets: int) -> None:
        self.rng = random.Random(seed)
        self.run = run
        self.seed_tickets = seed_tickets
        self.conversations: list[Conversation] = []
        self.photos = [png(32, 32, self.rng) for _ in range(3)]
        self.index = 0

    def messages(self, count: int) -> list[Mail]:
        kinds, weights = list(MIX), list(MIX.values())
        mails = []
        for index in range(count):
            self.index = index
            kind = self.rng.choices(kinds, weights)[0]
            if kind in {"reply_header", "reply_token"} and not self.conversations:
                kind = "english"
            if kind.startswith("seeded") and self.seed_tickets < 1:
                kind = "english"
            mails.append(getattr(self, f"_{kind}")())
        return mails

    # -- pieces --------------------------------------------------------------------------------

    def _message_id(self) -> str:
        return f"{self.run}.{self.index}@mail.bench.example"

    def _sender(self, *, chinese: bool) -> tuple[str, str]:
        if chinese:
            name = self.rng.choice(SURNAMES) + "".join(self.rng.choices(GIVEN, k=2))
        else:
            name = self.rng.choice(ENGLISH_NAMES)
        return name, f"c{self.index}.{self.run}@mail.bench.example"

    def _order(self) -> str:
        return f"SO2026{self.rng.randrange(100000):05d}"

    def _chinese_text(self) -> tuple[str, str, str]:
        """Subject, text, and the sentence the stored body must contain."""
        fill = {"order": self._order(), "product": self.rng.choice(PRODUCTS_ZH)}
        subject = self.rng.choice(SUBJECTS_ZH).format(**fill)
        sentences = [s.format(**fill) for s in self.rng.sample(SENTENCES_ZH, 3)]
        return subject, "\n".join(sentences) + "\n", sentences[0]

    def _english_text(self) -> tuple[str, str, str]:
        fill = {"order": self._order(), "product": self.rng.choice(PRODUCTS_EN)}
        subject = self.rng.choice(SUBJECTS_EN).format(**fill)
        sentences = [s.format(**fill) for s in self.rng.sample(SENTENCES_EN, 3)]
        return subject, "\n".join(sentences) + "\nBest regards\n", sentences[0]

    def _headers(
        self,
        *,
        name: str,
        address: str,
        subject: Header | str,
        charset: str,
        message_id: str,
        reply_to: str | None = None,
    ) -> list[tuple[str, str]]:
        subject_text = subject.encode() if isinstance(subject, Header) else subject
        headers = [
            ("From", formataddr((name, address), charset=charset)),
            ("To", SUPPORT_ADDRESS),
            ("Subject", subject_text),
            ("Date", formatdate(localtime=False)),
            ("Message-ID", f"<{message_id}>"),
        ]
        if reply_to:
            headers += [("In-Reply-To", f"<{reply_to}>"), ("References", f"<{reply_to}>")]
        return headers

    def _single_part(
        self, headers: list[tuple[str, str]], *, text: str, charset: str, encoding: str
    ) -> bytes:
        """A text/plain mail, its body in ``charset`` and ``encoding`` (7bit, 8bit, base64 or
        quoted-printable) exactly as given: the email package would pick its own."""
        body = text.encode(charset)
        if encoding == "base64":
            body = base64.encodebytes(body)
        elif encoding == "quoted-printable":
            body = quopri.encodestring(body)
        head = [*headers, ("MIME-Version", "1.0")]
        head += [("Content-Type", f'text/plain; charset="{charset}"')]
        head += [("Content-Transfer-Encoding", encoding)]
        return b"".join(f"{k}: {v}\n".encode() for k, v in head) + b"\n" + body

    def _subject(self, text: str, charset: str, *, prefix: str = "") -> Header:
        """A subject header: ``prefix`` (ASCII: "Re: ", a token placeholder) then ``text``,
        RFC 2047-encoded in ``charset`` when it is not ASCII."""
        header = Header()
        if prefix:
            header.append(prefix, "us-ascii")
        header.append(text, "us-ascii" if text.isascii() else charset)
        return header

    def _new(
        self, *, chinese: bool, charset: str, encoding: str, kind: str
    ) -> tuple[Mail, Conversation]:
        name, address = self._sender(chinese=chinese)
        subject, text, expected = self._chinese_text() if chinese else self._english_text()
        if chinese and charset == "gb2312":
            try:
                (subject + text + name).encode("gb2312")
            except UnicodeEncodeError:
                charset = "gbk"
        message_id = self._message_id()
        headers = self._headers(
            name=name,
            address=address,
            subject=self._subject(subject, charset),
            charset=charset,
            message_id=message_id,
        )
        raw = self._single_part(headers, text=text, charset=charset, encoding=encoding)
        conversation = Conversation(self.index, message_id, name, address, subject, text, chinese)
        mail = Mail(self.index, kind, raw, message_id, None, subject, expected, 0)
        return mail, conversation

    def _remember(self, pair: tuple[Mail, Conversation]) -> Mail:
        self.conversations.append(pair[1])
        return pair[0]

    # -- kinds ---------------------------------------------------------------------------------

    def _english(self) -> Mail:
        pair = self._new(chinese=False, charset="us-ascii", encoding="7bit", kind="english")
        return self._remember(pair)

    def _chinese_8bit(self) -> Mail:
        charset = self.rng.choice(["gbk", "gb2312"])
        return self._remember(
            self._new(chinese=True, charset=charset, encoding="8bit", kind="chinese_8bit")
        )

    def _chinese_base64(self) -> Mail:
        charset = self.rng.choice(["gbk", "gb2312"])
        return self._remember(
            self._new(chinese=True, charset=charset, encoding="base64", kind="chinese_base64")
        )

    def _utf8_base64(self) -> Mail:
        return self._remember(
            self._new(chinese=True, charset="utf-8", encoding="base64", kind="utf8_base64")
        )

    def _utf8_qp(self) -> Mail:
        return self._remember(
            self._new(chinese=True, charset="utf-8", encoding="quoted-printable", kind="utf8_qp")
        )

    def _multipart(self, *, kind: str) -> Mail:
        chinese = self.rng.random() < 0.6
        name, address = self._sender(chinese=chinese)
        subject, text, expected = self._chinese_text() if chinese else self._english_text()
        message_id = self._message_id()
        mail = EmailMessage()
        for key, value in self._headers(
            name=name, address=address, subject=subject, charset="utf-8", message_id=message_id
        ):
            mail[key] = value
        mail.set_content(text, charset="utf-8", cte="quoted-printable")
        files = 0
        if kind == "html":
            paragraphs = "".join(f"<p>{line}</p>" for line in text.splitlines())
            html = (
                f'<html><body><div style="font-family: sans-serif">{paragraphs}</div></body></html>'
            )
            mail.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
        else:
            files = self.rng.choice([1, 2])
            for n in range(files):
                if n == 0 and self.rng.random() < 0.5:
                    mail.add_attachment(
                        pdf(f"Invoice {self.index}", self.rng),
                        maintype="application",
                        subtype="pdf",
                        filename=f"invoice-{self.index}.pdf",
                    )
                else:
                    mail.add_attachment(
                        self.rng.choice(self.photos),
                        maintype="image",
                        subtype="png",
                        filename=f"photo-{n + 1}.png",
                    )
        self.conversations.append(
            Conversation(self.index, message_id, name, address, subject, text, chinese)
        )
        return Mail(self.index, kind, mail.as_bytes(), message_id, None, subject, expected, files)

    def _html(self) -> Mail:
        return self._multipart(kind="html")

    def _attachment(self) -> Mail:
        return self._multipart(kind="attachment")

    def _reply(self, *, by_token: bool) -> Mail:
        earlier = self.rng.choice(self.conversations[-300:])
        chinese = earlier.chinese
        new_text = FOLLOW_UP_ZH if chinese else FOLLOW_UP_EN
        quoted = "\n".join(f"> {line}" for line in earlier.text.splitlines())
        text = f"{new_text}\n\n{quoted}\n"
        charset = "gbk" if chinese else "us-ascii"
        prefix = "Re: " + (f"@@TOKEN:m{earlier.index}@@ " if by_token else "")
        headers = self._headers(
            name=earlier.name,
            address=earlier.address,
            subject=self._subject(earlier.subject, charset, prefix=prefix),
            charset=charset,
            message_id=self._message_id(),
            reply_to=None if by_token else earlier.message_id,
        )
        encoding = "8bit" if chinese else "7bit"
        raw = self._single_part(headers, text=text, charset=charset, encoding=encoding)
        kind = "reply_token" if by_token else "reply_header"
        return Mail(self.index, kind, raw, self._message_id(), f"m{earlier.index}", "", new_text, 0)

    def _reply_header(self) -> Mail:
        return self._reply(by_token=False)

    def _reply_token(self) -> Mail:
        return self._reply(by_token=True)

    def _seeded(self, *, by_token: bool) -> Mail:
        k = self.rng.randint(1, self.seed_tickets)
        text = "您好，这个订单还没有处理好，请尽快回复。\nThanks\n"
        prefix = "Re: " + (f"@@TOKEN:s{k}@@ " if by_token else "")
        headers = self._headers(
            name="老客户",
            address=f"@@ADDR:s{k}@@",
            subject=self._subject("订单进度", "utf-8", prefix=prefix),
            charset="utf-8",
            message_id=self._message_id(),
            reply_to=None if by_token else f"@@MSGID:s{k}@@",
        )
        raw = self._single_part(headers, text=text, charset="utf-8", encoding="base64")
        kind = "seeded_token" if by_token else "seeded_header"
        return Mail(self.index, kind, raw, self._message_id(), f"s{k}", "", text.split("\n")[0], 0)

    def _seeded_header(self) -> Mail:
        return self._seeded(by_token=False)

    def _seeded_token(self) -> Mail:
        return self._seeded(by_token=True)


def fill_placeholders(raw: bytes, value: Callable[[str, str, int], str]) -> bytes:
    """``raw`` with every ``@@WHAT:<s|m><n>@@`` replaced by ``value(what, kind, n)``."""
    return PLACEHOLDER.sub(lambda m: value(m[1].decode(), m[2].decode(), int(m[3])).encode(), raw)


# -- correctness ---------------------------------------------------------------------------------


def _flat(text: str) -> str:
    return " ".join(text.split())


def check_round(mails: list[Mail], result: dict[str, Any]) -> Counter[str]:
    """Failed checks of one side's round, by name: every mail stored; new mail on a ticket of
    its own, replies on the ticket they name; new tickets' subjects as sent; bodies holding the
    text sent (Chinese counted apart); attachments all there."""
    failed: Counter[str] = Counter()
    records, seeded = result["records"], result["seeded"]
    taken: set[Any] = set(seeded.values())
    for mail, record in zip(mails, records, strict=True):
        ticket = record["ticket"]
        if ticket is None:
            failed["stored"] += 1
            continue
        if mail.thread is None:
            expected = None
            failed["threading"] += ticket in taken
            taken.add(ticket)
        elif mail.thread.startswith("m"):
            expected = records[int(mail.thread[1:])]["ticket"]
        else:
            expected = seeded.get(mail.thread)
        failed["threading"] += expected is not None and ticket != expected
        failed["threading"] += mail.thread is not None and expected is None
        failed["subject"] += bool(mail.subject) and _flat(mail.subject) not in _flat(
            record["subject"]
        )
        body_check = "body" if mail.body.isascii() else "chinese_body"
        failed[body_check] += _flat(mail.body) not in _flat(record["body"])
        failed["attachments"] += record["attachments"] != mail.attachments
    return failed


# -- the project side ----------------------------------------------------------------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
    import django

    django.setup()


def project_setup(*, tenant_slug: str, seed_tickets: int) -> dict[str, Any]:
    """The bench merchant with its email channel and ``seed_tickets`` generated tickets (their
    inbound email carrying Message-IDs), generated once and reused."""
    _django()
    from bench.generate import Options, generate
    from bench.ingest import bench_channel
    from helpdesk import tenancy
    from helpdesk.models import Tenant
    from tickets.models import Message, Ticket

    started = time.perf_counter()
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    have = 0
    if tenant is not None:
        with tenancy.activate(tenant):
            have = Ticket.objects.filter(number__lte=seed_tickets).count()
    if have < seed_tickets:
        print(f"project: generating {seed_tickets:,} tickets for {tenant_slug}", file=sys.stderr)
        options = Options(
            tickets=seed_tickets, tenant=tenant_slug, message_ids=True, progress=False
        )
        generate(options)
    tenant, _account = bench_channel(tenant_slug)
    with tenancy.activate(tenant):
        have = Ticket.objects.filter(number__lte=seed_tickets).count()
        with_ids = (
            Message.objects.filter(ticket__number__lte=min(seed_tickets, 500))
            .exclude(external_id="")
            .exists()
        )
    if not with_ids:
        raise SystemExit(
            f"{tenant_slug}'s seeded mail has no Message-IDs (generated without message_ids):"
            " pick another --project-tenant"
        )
    return {"tickets": have, "setup_seconds": round(time.perf_counter() - started, 1)}


class ProjectResolver:
    """Fills a mail's placeholders as the project would see them: ``s<k>`` is the first seeded
    email ticket from number k on that may still be continued (not closed, not merged), ``m<i>``
    the ticket the round's mail ``i`` became."""

    def __init__(self, seed_tickets: int) -> None:
        self.seed_tickets = seed_tickets
        self.landed: dict[int, int | None] = {}
        self.seeded: dict[str, int] = {}
        self.parts: dict[int, dict[str, str]] = {}

    def seeded_parts(self, k: int) -> dict[str, str]:
        from tickets.models import Channel, CustomerIdentity, IdentityKind, Message, Ticket

        if k in self.parts:
            return self.parts[k]
        candidates = (
            Ticket.objects.filter(channel=Channel.EMAIL, merged_into__isnull=True)
            .exclude(status=Ticket.Status.CLOSED)
            .filter(messages__direction=Message.Direction.INBOUND, messages__external_id__gt="")
        )
        ticket = (
            candidates.filter(number__gte=k, number__lte=self.seed_tickets)
            .order_by("number")
            .first()
        ) or candidates.filter(number__lt=k).order_by("-number").first()
        if ticket is None:
            raise SystemExit("project: no seeded email ticket to reply to")
        message = (
            Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND)
            .exclude(external_id="")
            .order_by("pk")
            .first()
        )
        address = (
            CustomerIdentity.objects.filter(customer_id=ticket.customer_id, kind=IdentityKind.EMAIL)
            .values_list("value", flat=True)
            .first()
        )
        self.seeded[f"s{k}"] = ticket.pk
        self.parts[k] = {
            "TOKEN": f"[#{ticket.number}]",
            "MSGID": message.external_id if message else "",
            "ADDR": address or "",
        }
        return self.parts[k]

    def value(self, what: str, kind: str, number: int) -> str:
        from tickets.models import Ticket

        if kind == "m":
            ticket_id = self.landed.get(number)
            found = Ticket.objects.filter(pk=ticket_id).values_list("number", flat=True).first()
            return f"[#{found}]"
        return self.seeded_parts(number)[what]


def ingest_project(
    account: Any, mails: list[Mail], *, seed_tickets: int, progress: bool = False
) -> dict[str, Any]:
    """Ingest ``mails`` as a worker does, one at a time (``store_raw`` + ``process_raw``, each
    timed), in the active merchant; then read back what each became."""
    from django.db import connection

    from bench.dbtime import DatabaseClock
    from channels_in import pipeline
    from channels_in.base import Envelope
    from channels_in.models import RawInbound
    from channels_in.pipeline import process_raw, store_raw

    resolver = ProjectResolver(seed_tickets)
    clock = DatabaseClock()
    # Parsing (MIME, charsets, the body's text), timed apart: work any implementation must do.
    parsing = [0.0]
    parse_payload = pipeline.parse_payload

    def timed_parse(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return parse_payload(*args, **kwargs)
        finally:
            parsing[0] += time.perf_counter() - started

    pipeline.parse_payload = timed_parse
    latencies: list[float] = []
    cpu = 0.0
    failed = 0
    errors: list[str] = []
    landed: list[tuple[int | None, int | None]] = []
    for mail in mails:
        payload = fill_placeholders(mail.raw, resolver.value)
        cpu_started = time.process_time()
        started = time.perf_counter()
        try:
            with clock.timing(connection):
                raw, _ = store_raw(
                    account=account,
                    envelope=Envelope.of(payload),
                    source=RawInbound.Source.IMPORT,
                )
                result = process_raw(raw.pk)
        except Exception as exc:  # counted as failed; the pipeline logged why
            result = None
            errors.append(f"mail {mail.index} ({mail.kind}): {type(exc).__name__}: {exc}")
        latencies.append(time.perf_counter() - started)
        cpu += time.process_time() - cpu_started
        ok = result is not None and result.state == RawInbound.State.PROCESSED
        failed += not ok
        if not ok and len(errors) < failed:  # no exception: say what became of it
            outcome = f"{result.state} {result.error}" if result else "process_raw returned None"
            errors.append(f"mail {mail.index} ({mail.kind}): {outcome}")
        ticket_id = result.ticket_id if ok else None
        resolver.landed[mail.index] = ticket_id
        landed.append((ticket_id, result.message_id if ok else None))
        if progress and len(latencies) % 500 == 0:
            print(f"project: {len(latencies):,} of {len(mails):,}", file=sys.stderr)
    return {
        "side": "project",
        "latencies": latencies,
        "cpu_seconds": cpu,
        "db_seconds": clock.seconds,
        "db_statements": clock.statements,
        "parse_seconds": parsing[0],
        "failed": failed,
        "errors": errors[:20],
        "records": project_records(landed),
        "seeded": resolver.seeded,
    }


def project_records(landed: list[tuple[int | None, int | None]]) -> list[dict[str, Any]]:
    """What each mail became: its ticket, the ticket's subject, the message's text and files."""
    from django.db.models import Count

    from tickets.models import Attachment, Message, Ticket

    message_ids = [m for _t, m in landed if m]
    messages = {
        row["pk"]: row
        for row in Message.objects.filter(pk__in=message_ids).values("pk", "body_text")
    }
    subjects = dict(
        Ticket.objects.filter(pk__in=[t for t, _m in landed if t]).values_list("pk", "subject")
    )
    files = dict(
        Attachment.objects.filter(message_id__in=message_ids)
        .values("message_id")
        .annotate(n=Count("pk"))
        .values_list("message_id", "n")
    )
    return [
        {
            "ticket": ticket_id,
            "subject": subjects.get(ticket_id, ""),
            "body": messages[message_id]["body_text"] if message_id in messages else "",
            "attachments": files.get(message_id, 0),
        }
        for ticket_id, message_id in landed
    ]


def project_round(*, tenant_slug: str, mails_path: Path, out: Path) -> None:
    _django()
    from bench.ingest import bench_channel
    from helpdesk import tenancy

    spec = json.loads(mails_path.read_text())
    mails = [mail_of(each) for each in spec["mails"]]
    tenant, account = bench_channel(tenant_slug)
    with tenancy.activate(tenant):
        result = ingest_project(account, mails, seed_tickets=spec["seed_tickets"], progress=True)
    out.write_text(json.dumps(result))


def project_list(*, tenant_slug: str, runs: int, search: str) -> dict[str, Any]:
    """The project's side of the list phase, with bench/inbox.py's helpers: the default inbox
    (``/tickets/``) of the merchant's supervisor, who like the peer's staff sees every ticket,
    and of an agent (one group); the view counts the page loads after itself; and the
    supervisor's search of every ticket for ``search``, as the peer's search spans all its
    statuses."""
    _django()
    from functools import partial
    from urllib.parse import quote

    from bench.inbox import client_for, get, measure
    from helpdesk import tenancy
    from helpdesk.models import Tenant
    from tickets.inbox import UNSOLVED
    from tickets.models import Ticket

    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise SystemExit(f"no merchant {tenant_slug}: run the setup first")
    with tenancy.activate(tenant):
        figures: dict[str, Any] = {
            "tickets": Ticket.objects.count(),
            "open_tickets": Ticket.objects.filter(status__in=UNSOLVED).count(),
        }
    supervisor = client_for(f"{tenant_slug}-supervisor-0")
    agent = client_for(f"{tenant_slug}-agent-0")
    pages = {
        "list": (supervisor, "/tickets/"),
        "list_agent": (agent, "/tickets/"),
        "list_counts": (supervisor, "/tickets/counts/"),
        "search": (supervisor, f"/tickets/?view=all&q={quote(search)}"),
    }
    for name, (client, url) in pages.items():
        call = partial(get, client, url)
        # No plans printed: this process's output goes to a log file.
        measure(figures, name, call, tenant=tenant, label=url, runs=runs, slow_ms=float("inf"))
    return figures


def list_ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """How many times faster the project's list and search are than the peer's, at p50 and
    p95 (the peer's page and its table request together over the project's page), and how far
    apart the two sides' ticket counts are."""
    ratios: dict[str, Any] = {}
    for name in ("list", "search"):
        for stat in ("p50", "p95"):
            project = figures.get(f"project_{name}_{stat}_ms")
            peer = figures.get(f"peer_{name}_{stat}_ms")
            if project and peer is not None:
                ratios[f"ratio_{name}_{stat}"] = round(peer / project, 2)
    project_tickets = figures.get("project_list_tickets", 0)
    peer_tickets = figures.get("peer_list_tickets", 0)
    if project_tickets and peer_tickets:
        gap = abs(project_tickets - peer_tickets) / max(project_tickets, peer_tickets)
        ratios["list_size_gap"] = round(gap, 3)
    return ratios


def parse_phases(text: str) -> tuple[str, ...]:
    """``--phases``: a comma-separated subset of :data:`PHASES`, run in their fixed order."""
    asked = {part.strip() for part in text.split(",") if part.strip()}
    unknown = asked - set(PHASES)
    if unknown or not asked:
        raise argparse.ArgumentTypeError(
            f"phases are {', '.join(PHASES)} (comma-separated), not {text!r}"
        )
    return tuple(phase for phase in PHASES if phase in asked)


def mail_of(spec: dict[str, Any]) -> Mail:
    return Mail(**(spec | {"raw": base64.b64decode(spec["raw"])}))


# -- the driver ----------------------------------------------------------------------------------


def ensure_peer_venv(venv: Path) -> Path:
    """The peer's python, with django-helpdesk installed from PyPI when missing or when the
    pins changed."""
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    wanted = hashlib.sha256(PEER_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"peer: creating {venv}", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
    print("peer: pip install -r bench/peer/requirements.txt", file=sys.stderr)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(PEER_REQUIREMENTS)],
        check=True,
        stdout=sys.stderr,
    )
    stamp.write_text(wanted + "\n")
    return python


def run_step(command: list[str], *, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one side's step in a process of its own; its JSON result. What it prints (the
    project logs every message) goes to ``<out>.log``, shown when the step fails."""
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        done = subprocess.run(
            [*command, "--out", str(out)], stdout=sink, stderr=sink, env=env, cwd=REPO
        )
    if done.returncode:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"{' '.join(command[:3])} failed (exit {done.returncode}); log: {log}")
    return json.loads(out.read_text())


def _loadavg() -> float:
    return os.getloadavg()[0]


def summary(side: str, rounds: list[dict[str, Any]], mails: list[list[Mail]]) -> dict[str, Any]:
    """A side's figures over its rounds (``mails`` are each round's): messages/s per round and
    their median, pooled latency percentiles, overall and per kind, CPU seconds of the timed
    calls."""
    rates = [len(r["latencies"]) / sum(r["latencies"]) for r in rounds if r["latencies"]]
    pooled = sorted(x for r in rounds for x in r["latencies"])
    cpu = sum(r["cpu_seconds"] for r in rounds)
    figures: dict[str, Any] = {
        f"{side}_messages": len(pooled),
        f"{side}_messages_per_second": round(statistics.median(rates), 1) if rates else 0.0,
    }
    for n, rate in enumerate(rates, 1):
        figures[f"{side}_messages_per_second_round_{n}"] = round(rate, 1)
    for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        figures[f"{side}_latency_{name}_ms"] = round(percentile(pooled, fraction) * 1000, 1)
    figures[f"{side}_cpu_seconds"] = round(cpu, 2)
    figures[f"{side}_cpu_ms_per_message"] = round(cpu / len(pooled) * 1000, 2) if pooled else 0.0
    db = sum(r.get("db_seconds", 0.0) for r in rounds)
    statements = sum(r.get("db_statements", 0) for r in rounds)
    if pooled:
        figures[f"{side}_db_ms_per_message"] = round(db / len(pooled) * 1000, 2)
        figures[f"{side}_python_ms_per_message"] = round((sum(pooled) - db) / len(pooled) * 1000, 2)
        figures[f"{side}_statements_per_message"] = round(statements / len(pooled), 1)
        if any("parse_seconds" in r for r in rounds):
            parse = sum(r.get("parse_seconds", 0.0) for r in rounds)
            figures[f"{side}_parse_ms_per_message"] = round(parse / len(pooled) * 1000, 2)
    figures[f"{side}_failed"] = sum(r["failed"] for r in rounds)
    by_kind: dict[str, list[float]] = {kind: [] for kind in MIX}
    for result, sent in zip(rounds, mails, strict=True):
        for mail, seconds in zip(sent, result["latencies"], strict=True):
            by_kind[mail.kind].append(seconds)
    for kind, latencies in by_kind.items():
        if latencies:
            p50 = percentile(sorted(latencies), 0.50)
            figures[f"{side}_latency_p50_ms_{kind}"] = round(p50 * 1000, 1)
    return figures


@dataclass(frozen=True)
class Sides:
    """How to start each side's steps, shared by the phases."""

    me: list[str]  # the project's python running this file
    runner: list[str]  # the peer's python running bench/peer/runner.py
    tenant: str
    workdir: Path
    env: dict[str, str]


def ingest_phase(options: argparse.Namespace, sides: Sides) -> tuple[dict[str, Any], bool]:
    """The rounds, turn about, each side's round checked; the figures and whether every check
    that counts passed."""
    figures: dict[str, Any] = {"messages_per_round": options.messages, "rounds": options.rounds}
    stamp = time.strftime("%Y%m%d%H%M%S")
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    failed: Counter[str] = Counter()
    sent: list[list[Mail]] = []
    for number in range(1, options.rounds + 1):
        mix = PeerMix(
            seed=options.seed * 1000 + number,
            run=f"{stamp}r{number}{uuid.uuid4().hex[:6]}",
            seed_tickets=options.seed_tickets,
        )
        mails = mix.messages(options.messages)
        sent.append(mails)
        mails_path = sides.workdir / f"mails-{number}.json"
        spec = {"seed_tickets": options.seed_tickets, "mails": [m.as_json() for m in mails]}
        mails_path.write_text(json.dumps(spec))
        for side in SIDES:
            out = sides.workdir / f"{side}-{number}.json"
            print(f"round {number}: {side}, {len(mails):,} mails", file=sys.stderr)
            if side == "project":
                command = [*sides.me, "project-round", "--tenant", sides.tenant]
            else:
                command = [*sides.runner, "round"]
            result = run_step([*command, "--mails", str(mails_path)], out=out, env=sides.env)
            for error in result.get("errors", [])[:5]:
                print(f"round {number}: {side}: {error}", file=sys.stderr)
            results[side].append(result)
            checks = check_round(mails, result)
            for name, count in checks.items():
                failed[f"{side}_{name}"] += count
            rate = len(result["latencies"]) / (sum(result["latencies"]) or 1)
            bad = sum(checks.values())
            print(
                f"round {number}: {side} {rate:.1f} messages/s, {bad} failed checks",
                file=sys.stderr,
            )
    for side in SIDES:
        figures |= summary(side, results[side], sent)
    for side in SIDES:
        for name in CHECKS:
            figures[f"{side}_{name}_check_failed"] = failed[f"{side}_{name}"]
    peer_rate = figures["peer_messages_per_second"]
    figures["ratio_messages_per_second"] = (
        round(figures["project_messages_per_second"] / peer_rate, 2) if peer_rate else 0.0
    )
    # The best ratios the project could reach if the rest of its Python took no time at all:
    # the peer's time per message over the project's time waiting on the database (and parsing).
    if figures.get("project_db_ms_per_message") and peer_rate:
        peer_ms = 1000 / peer_rate
        db_ms = figures["project_db_ms_per_message"]
        figures["ratio_ceiling_database_only"] = round(peer_ms / db_ms, 2)
        parse_ms = figures.get("project_parse_ms_per_message", 0.0)
        figures["ratio_ceiling_database_and_parsing"] = round(peer_ms / (db_ms + parse_ms), 2)
    failing_sides = ["project"] if options.allow_peer_failures else list(SIDES)
    passed = not any(
        figures[f"{side}_failed"] or any(failed[f"{side}_{name}"] for name in CHECKS)
        for side in failing_sides
    )
    return figures, passed


def list_phase(options: argparse.Namespace, sides: Sides) -> dict[str, Any]:
    """Each side's ticket list and search, timed in a process of its own (the project first,
    then the peer); the figures prefixed by side, and the ratios."""
    runs, search = str(options.list_runs), options.list_search
    print(f"list: project, {runs} requests of each page", file=sys.stderr)
    project = run_step(
        [*sides.me, "project-list", "--tenant", sides.tenant, "--runs", runs, "--search", search],
        out=sides.workdir / "project-list.json",
        env=sides.env,
    )
    print(f"list: peer, {runs} requests of each page", file=sys.stderr)
    peer = run_step(
        [*sides.runner, "list", "--runs", runs, "--search", search],
        out=sides.workdir / "peer-list.json",
        env=sides.env,
    )
    figures: dict[str, Any] = {"list_runs": options.list_runs, "list_search": search}
    # The sizes first: the lists must read tickets of the same number.
    for side, result in (("project", project), ("peer", peer)):
        figures[f"{side}_list_tickets"] = result.pop("tickets")
        figures[f"{side}_list_open_tickets"] = result.pop("open_tickets")
    figures |= {f"project_{name}": value for name, value in project.items()}
    figures |= {f"peer_{name}": value for name, value in peer.items()}
    figures |= list_ratios(figures)
    if figures.get("list_size_gap", 0) > LIST_SIZE_TOLERANCE:
        print(
            f"list: the sides differ in size ({figures['project_list_tickets']:,} tickets here,"
            f" {figures['peer_list_tickets']:,} in the peer): the lists are not comparable",
            file=sys.stderr,
        )
    return figures


def run(options: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Seed both sides, then run the phases; the figures and whether every check that counts
    passed."""
    figures: dict[str, Any] = {"loadavg_1m_start": round(_loadavg(), 2)}
    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-peer-"))
    env = os.environ.copy()
    env["MEDIA_ROOT"] = str(workdir / "project-media")
    env["PEER_MEDIA_ROOT"] = str(workdir / "peer-media")
    peer_db = options.peer_db or f"helpdesk_peer_{options.seed_tickets}"
    env["PEER_DB_NAME"] = peer_db
    env.pop("DJANGO_SETTINGS_MODULE", None)
    peer_python = ensure_peer_venv(options.peer_venv)
    sides = Sides(
        me=[sys.executable, str(Path(__file__).resolve())],
        runner=[str(peer_python), str(PEER_DIR / "runner.py")],
        tenant=options.project_tenant or f"bench-peer-{options.seed_tickets}",
        workdir=workdir,
        env=env,
    )
    print(f"setup: seeding both sides to {options.seed_tickets:,} tickets", file=sys.stderr)
    seed_tickets = str(options.seed_tickets)
    peer_setup = run_step(
        [*sides.runner, "setup", "--seed-tickets", seed_tickets],
        out=workdir / "peer-setup.json",
        env=env,
    )
    own_setup = run_step(
        [*sides.me, "project-setup", "--tenant", sides.tenant, "--seed-tickets", seed_tickets],
        out=workdir / "project-setup.json",
        env=env,
    )
    figures |= {
        "project_tenant": sides.tenant,
        "project_seeded_tickets": own_setup["tickets"],
        "peer_database": peer_db,
        "peer_seeded_tickets": peer_setup["tickets"],
    }
    if peer_setup.get("seeded"):  # seeded in this run: how fast
        figures["peer_seeded_now"] = peer_setup["seeded"]
        figures["peer_seed_seconds"] = peer_setup["seed_seconds"]
        figures["peer_seed_tickets_per_second"] = peer_setup["seed_tickets_per_second"]
    passed = True
    if "ingest" in options.phases:
        ingest, passed = ingest_phase(options, sides)
        figures |= ingest
    if "list" in options.phases:
        figures |= list_phase(options, sides)
    figures["loadavg_1m_end"] = round(_loadavg(), 2)
    if options.keep_files:
        print(f"kept the mails and media in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures, passed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    setup_parser = commands.add_parser("project-setup", help="(internal) seed the project side")
    setup_parser.add_argument("--tenant", required=True)
    setup_parser.add_argument("--seed-tickets", type=int, required=True)
    setup_parser.add_argument("--out", type=Path, required=True)
    round_parser = commands.add_parser("project-round", help="(internal) one project round")
    round_parser.add_argument("--tenant", required=True)
    round_parser.add_argument("--mails", type=Path, required=True)
    round_parser.add_argument("--out", type=Path, required=True)
    list_parser = commands.add_parser("project-list", help="(internal) the project's list")
    list_parser.add_argument("--tenant", required=True)
    list_parser.add_argument("--runs", type=int, required=True)
    list_parser.add_argument("--search", required=True)
    list_parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--phases",
        type=parse_phases,
        default=PHASES,
        metavar="ingest,list",
        help="what to run after seeding (both)",
    )
    parser.add_argument("--messages", type=int, default=2_000, help="mails per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each side ingests each")
    parser.add_argument("--seed-tickets", type=int, default=100_000, help="tickets on each side")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated mail")
    parser.add_argument(
        "--project-tenant", metavar="SLUG", help="bench merchant (bench-peer-<seed tickets>)"
    )
    parser.add_argument(
        "--peer-db", metavar="NAME", help="the peer's database (helpdesk_peer_<seed tickets>)"
    )
    parser.add_argument(
        "--peer-venv", type=Path, default=REPO / ".bench" / "peer-venv", help="its virtualenv"
    )
    parser.add_argument(
        "--list-runs", type=int, default=50, help="timed requests of each list page"
    )
    parser.add_argument(
        "--list-search", default=LIST_SEARCH, metavar="WORD", help="the word both sides search"
    )
    parser.add_argument("--json", type=Path, help="result file (bench/results/peer-<time>.json)")
    parser.add_argument("--keep-files", action="store_true", help="keep the mails and media")
    parser.add_argument(
        "--allow-peer-failures",
        action="store_true",
        help="exit 0 when only the peer fails checks (it mangles 8-bit GBK mail)",
    )
    options = parser.parse_args(argv)
    if options.command == "project-setup":
        setup = project_setup(tenant_slug=options.tenant, seed_tickets=options.seed_tickets)
        options.out.write_text(json.dumps(setup))
        return
    if options.command == "project-round":
        project_round(tenant_slug=options.tenant, mails_path=options.mails, out=options.out)
        return
    if options.command == "project-list":
        figures = project_list(tenant_slug=options.tenant, runs=options.runs, search=options.search)
        options.out.write_text(json.dumps(figures))
        return
    if options.seed_tickets < 1 or options.list_runs < 1:
        parser.error("--seed-tickets and --list-runs must be >= 1")
    if "ingest" in options.phases and (options.messages < 1 or options.rounds < 2):
        parser.error("--messages must be >= 1, --rounds >= 2")
    figures, passed = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    path = (
        options.json or REPO / "bench" / "results" / f"peer-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures | {"checks_passed": passed}, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
