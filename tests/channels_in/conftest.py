from __future__ import annotations

import pytest

from channels_in.models import ChannelAccount, Mailbox


@pytest.fixture
def acme_mailbox(in_acme) -> Mailbox:
    account = ChannelAccount.objects.create(kind="email", name="Acme support")
    return Mailbox.objects.create(
        account=account, address="support@acme.example", from_name="Acme 家电"
    )


@pytest.fixture
def acme_email(acme_mailbox) -> ChannelAccount:
    return acme_mailbox.account
