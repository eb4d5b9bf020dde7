"""bench/peer.py on the project side: the side-by-side mail mix is what the issue asks for, the
project's worker path files it correctly, and the checks catch what a side gets wrong."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from pathlib import Path

import pytest

from bench.generate import Options, generate
from bench.ingest import bench_channel
from bench.peer import MIX, Mail, PeerMix, check_round, fill_placeholders, ingest_project
from helpdesk import tenancy

SEEDED = 60


def mix(count: int = 300, seed_tickets: int = SEEDED) -> list[Mail]:
    return PeerMix(seed=7, run="t1", seed_tickets=seed_tickets).messages(count)


def test_the_mix_holds_every_kind_the_issue_names() -> None:
    mails = mix()
    assert set(Counter(mail.kind for mail in mails)) == set(MIX)
    eight_bit = [mail for mail in mails if mail.kind == "chinese_8bit"]
    assert all(b"Content-Transfer-Encoding: 8bit" in mail.raw for mail in eight_bit)
    assert any(b'charset="gb2312"' in mail.raw for mail in eight_bit)
    # Raw GBK bytes in the body, not an encoding of them.
    assert all(mail.body.encode("gbk") in mail.raw for mail in eight_bit)
    kinds = {mail.kind: mail.raw for mail in mails}
    assert b"Content-Transfer-Encoding: quoted-printable" in kinds["utf8_qp"]
    assert b"multipart/alternative" in kinds["html"]
    assert b"In-Reply-To: <t1." in kinds["reply_header"]
    assert b"@@TOKEN:m" in kinds["reply_token"] and b"In-Reply-To" not in kinds["reply_token"]
    assert b"In-Reply-To: <@@MSGID:s" in kinds["seeded_header"]
    assert b"@@TOKEN:s" in kinds["seeded_token"]


def test_every_mail_reads_back_as_sent() -> None:
    for mail in mix():
        parsed = email.message_from_bytes(mail.raw, policy=email.policy.default)
        text = parsed.get_body(preferencelist=("plain",)).get_content()
        assert mail.body in text, mail.kind
        if mail.subject:
            assert str(parsed["subject"]) == mail.subject
        assert sum(1 for _ in parsed.iter_attachments()) == mail.attachments


def test_the_same_seed_gives_the_same_mix() -> None:
    def shape(mails: list[Mail]) -> list[tuple]:
        return [(m.kind, m.thread, m.subject, m.body, m.attachments) for m in mails]

    assert shape(mix(200)) == shape(mix(200))


def test_placeholders_are_filled_per_side() -> None:
    raw = b"Subject: Re: @@TOKEN:m3@@ hi\nIn-Reply-To: <@@MSGID:s12@@>\nFrom: <@@ADDR:s12@@>\n"
    seen: list[tuple[str, str, int]] = []

    def value(what: str, kind: str, number: int) -> str:
        seen.append((what, kind, number))
        return {"TOKEN": "[#41]", "MSGID": "12.x@seed", "ADDR": "c@x"}[what]

    filled = fill_placeholders(raw, value)
    assert filled == b"Subject: Re: [#41] hi\nIn-Reply-To: <12.x@seed>\nFrom: <c@x>\n"
    assert seen == [("TOKEN", "m", 3), ("MSGID", "s", 12), ("ADDR", "s", 12)]


def test_the_checks_catch_a_wrong_ticket_a_mangled_body_and_a_lost_file() -> None:
    mails = [
        Mail(0, "chinese_8bit", b"", "a@x", None, "退款", "请问可以上门维修吗", 0),
        Mail(1, "reply_header", b"", "b@x", "m0", "", "Any news?", 0),
        Mail(2, "attachment", b"", "c@x", None, "Photos", "Hello", 2),
        Mail(3, "seeded_header", b"", "d@x", "s5", "", "您好", 0),
    ]
    good = {
        "seeded": {"s5": 99},
        "records": [
            {"ticket": 1, "subject": "退款", "body": "请问可以上门维修吗", "attachments": 0},
            {"ticket": 1, "subject": "退款", "body": "Any news?", "attachments": 0},
            {"ticket": 2, "subject": "Photos", "body": "Hello", "attachments": 2},
            {"ticket": 99, "subject": "x", "body": "您好", "attachments": 0},
        ],
    }
    assert sum(check_round(mails, good).values()) == 0
    bad = {
        "seeded": {"s5": 99},
        "records": [
            {"ticket": 1, "subject": "退款", "body": "\ufffd\ufffd", "attachments": 0},
            {"ticket": 3, "subject": "", "body": "Any news?", "attachments": 0},
            {"ticket": 2, "subject": "Photos", "body": "Hello", "attachments": 1},
            {"ticket": None, "subject": "", "body": "", "attachments": 0},
        ],
    }
    failed = check_round(mails, bad)
    assert (failed["chinese_body"], failed["threading"], failed["attachments"]) == (1, 1, 1)
    assert failed["stored"] == 1


@pytest.mark.django_db
def test_the_project_files_the_whole_mix_and_passes_every_check(
    settings, tmp_path: Path, tenant_globex
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    generate(
        Options(
            tickets=SEEDED,
            tenant="bench-peer-test",
            workers=1,
            batch=SEEDED,
            analyze=False,
            progress=False,
            message_ids=True,
        )
    )
    tenant, account = bench_channel("bench-peer-test")
    mails = mix(120)
    with tenancy.activate(tenant):
        result = ingest_project(account, mails, seed_tickets=SEEDED)
    assert result["failed"] == 0
    assert len(result["latencies"]) == len(mails) and result["cpu_seconds"] > 0
    assert result["seeded"], "the mix replied to seeded tickets"
    assert dict(+check_round(mails, result)) == {}
