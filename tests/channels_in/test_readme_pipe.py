"""The README's Postfix pipe command, run exactly as written against a live server.

An MTA believes a pipe command that exits 0: the command must fail (exit 75, EX_TEMPFAIL, so the
MTA keeps the mail and tries again) whenever the helpdesk did not store the mail.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_URL = "https://help.example.com/inbound/acme/email/1/"


def documented_pipe_command() -> str:
    """The command of the README's alias line: `support: "|<command>"`."""
    match = re.search(r'^\s*support: "\|(?P<command>[^"]+)"\s*$', README.read_text(), re.M)
    assert match, "the README no longer shows a Postfix pipe alias"
    return match.group("command")


def run_as_postfix(command: str, mail: bytes) -> int:
    """Run an alias command the way Postfix's local(8) does: through /bin/sh, mail on stdin."""
    return subprocess.run(
        ["/bin/sh", "-c", command], input=mail, capture_output=True, timeout=90
    ).returncode


def command_for(account, base_url: str, secret: str | None = None) -> str:
    command = documented_pipe_command()
    # Only the two things a merchant fills in are replaced: the secret and the address.
    assert "SECRET" in command and DOCUMENTED_URL in command
    url = f"{base_url}/inbound/{account.tenant.slug}/email/{account.pk}/"
    return command.replace("SECRET", secret or account.inbound_secret).replace(DOCUMENTED_URL, url)


def test_the_documented_pipe_command_delivers_a_mail_that_becomes_a_ticket(live_server, acme_email):
    command = command_for(acme_email, live_server.url)
    # curl's --data-binary sends Content-Type: application/x-www-form-urlencoded.
    assert "--data-binary @-" in command and "Content-Type" not in command
    assert run_as_postfix(command, customer_mail(subject="README 管道")) == 0
    with tenancy.activate(acme_email.tenant):
        assert Ticket.objects.get().subject == "README 管道"


def test_the_documented_pipe_command_tells_the_mta_to_retry_when_the_mail_was_not_stored(
    live_server, acme_email
):
    wrong_secret = command_for(acme_email, live_server.url, secret="not-the-secret")
    assert run_as_postfix(wrong_secret, customer_mail()) == 75
    unreachable = command_for(acme_email, "http://127.0.0.1:9")  # nothing listens on port 9
    assert run_as_postfix(unreachable, customer_mail()) == 75
    with tenancy.activate(acme_email.tenant):
        assert RawInbound.objects.count() == 0


def test_the_documented_command_is_valid_shell(acme_email):
    # A stray quote would make /bin/sh fail before curl runs, which Postfix sees as a bounce.
    assert shlex.split(documented_pipe_command())[0] == "curl"
