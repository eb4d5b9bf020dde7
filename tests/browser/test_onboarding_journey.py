"""The whole way in, in a real browser, as a new merchant lives it: sign up, verify the email
from the mailed link, connect email (a forwarding address) and the chat widget from the
checklist, invite an agent who joins and signs in, import 10,000 orders while the progress bar
fills, and then the agent opens a customer's mail and sees that customer's orders beside it.

Everything runs on the production paths: the ASGI server with channels-redis, a real Celery
worker on the Redis broker, the inbound SMTP service on a loopback port, and Debian's chromium.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from helpdesk import tenancy
from helpdesk.models import Tenant
from tests.browser.conftest import CHROMIUM, free_port, live_asgi_server  # noqa: F401
from tests.channels_in.conftest import real_worker  # noqa: F401
from tests.channels_in.smtp_service import running_smtp_service, send
from tickets.models import Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]

ORDERS = 10_000


def path_of_link(message: mail.EmailMessage, fragment: str) -> str:
    found = re.search(rf"https?://[^/\s]+({re.escape(fragment)}\S+)", message.body)
    assert found, f"no {fragment} link in: {message.body}"
    return found.group(1)


def orders_csv() -> bytes:
    """A shop's order export: one line per order line, its own column names, Chinese text."""
    lines = ["订单号,Email,Name,Total,Currency,Placed at,SKU,Product,Quantity,Unit price"]
    for i in range(ORDERS):
        lines.append(
            f"BT{i:05d},buyer{i % 2000}@example.cn,买家{i % 2000},88.00,CNY,"
            f"2026-05-{i % 28 + 1:02d} 10:30,TEA-{i % 30},乌龙茶 {i % 30},2,44.00"
        )
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def store(live_asgi_server) -> Iterator[dict]:  # noqa: F811
    """The merchant's store on its own origin; its pages carry whatever snippet is pasted."""
    port = free_port()
    holder: dict = {"origin": f"http://localhost:{port}", "snippet": ""}

    class StorePage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = (
                '<!doctype html><html lang="en"><head><meta charset="utf-8">'
                "<title>Bamboo Tea</title></head><body><h1>Bamboo Tea</h1>"
                f"{holder['snippet']}</body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), StorePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield holder
    server.shutdown()
    server.server_close()


def customer_mail(to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "买家7 <buyer7@example.cn>"
    message["To"] = to
    message["Subject"] = "我的乌龙茶还没到"
    message["Message-ID"] = "<late-tea-7@example.cn>"
    message.set_content("订单 BT00007 已经一周了，还没有收到。")
    return message.as_bytes()


def step_state(page, key: str) -> str:
    return page.get_attribute(f"[data-step={key}]", "data-state")


def test_a_new_merchant_goes_from_signup_to_an_agent_seeing_a_customers_orders(
    live_asgi_server,  # noqa: F811
    store,
    chromium,
    real_worker,  # noqa: F811
    settings,
    tmp_path,
):
    server = live_asgi_server
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path)
    settings.HELPDESK_INBOUND_DOMAIN = "inbound.localhost"

    # 1. The owner signs up from the sign-in page.
    owner = chromium.new_context(locale="en-US").new_page()
    owner.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    owner.goto(f"{server}/login/")
    owner.click("#signup-link")
    owner.fill("#id_shop_name", "Bamboo Tea")
    owner.fill("#id_owner_name", "Wu Fang")
    owner.fill("#id_email", "fang@bamboo.example")
    owner.fill("#id_password1", "green-oolong-1987")
    owner.select_option("#id_default_currency", "CNY")
    owner.select_option("#id_time_zone", "Asia/Shanghai")
    owner.select_option("#id_language", "en")
    owner.click("#signup-form button[type=submit]")
    owner.wait_for_url(f"{server}/onboarding/")
    assert owner.inner_text("#onboarding-count") == "0 of 7 done"

    # 2. They verify their address from the mail.
    [verification] = mail.outbox
    assert verification.to == ["fang@bamboo.example"]
    owner.goto(server + path_of_link(verification, "/accounts/confirm-email/"))
    owner.click("#confirm-email")
    owner.wait_for_url(f"{server}/onboarding/")
    assert owner.locator("#verify-banner").count() == 0

    # 3. Email: the checklist leads to the channel form; the page then gives the address
    #    their mail host forwards to.
    owner.click("[data-step=email] a:has-text('Set up')")
    owner.fill("input[name=name]", "Support mail")
    owner.fill("input[name=address]", "service@bamboo.example")
    owner.click("button[name=save]")
    forwarding_address = owner.locator("#forwarding-email").inner_text()
    assert re.fullmatch(r"bamboo-tea\+[0-9a-f]+@inbound\.localhost", forwarding_address)

    # 4. Chat: a channel that allows the store's origin; its snippet goes on the store.
    owner.goto(f"{server}/onboarding/")
    assert step_state(owner, "email") == "done"
    owner.click("[data-step=chat] a:has-text('Set up')")
    owner.fill("input[name=name]", "Store chat")
    owner.fill("textarea[name=allowed_origins]", store["origin"])
    owner.click("form button[type=submit]:has-text('Connect')")
    store["snippet"] = owner.locator("#chat-snippet").inner_text()
    owner.goto(f"{server}/onboarding/")
    assert step_state(owner, "chat") == "todo"  # created, but not yet seen on the store

    visitor = chromium.new_context(locale="en-US").new_page()
    visitor.goto(store["origin"] + "/")
    visitor.locator("#helpdesk-chat .bubble").click()
    # Nobody of the new shop is online: the widget offers to leave a message.
    visitor.locator("#helpdesk-chat form.offline").wait_for(timeout=10_000)
    owner.reload()
    assert step_state(owner, "chat") == "done"
    assert owner.inner_text("#onboarding-count") == "2 of 7 done"

    # 5. A customer's mail, forwarded by the shop's mail host, reaches the platform by SMTP.
    with running_smtp_service() as port:
        assert send(port, [forwarding_address], customer_mail(forwarding_address)) == {}
    tenant = Tenant.objects.get(slug="bamboo-tea")
    deadline = time.monotonic() + 30
    while True:
        with tenancy.activate(tenant):
            ticket = Ticket.objects.filter(subject="我的乌龙茶还没到").first()
        if ticket is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ticket is not None, "the forwarded mail opened no ticket"

    # 6. The owner invites an agent, who joins from the mailed link in a browser of their own.
    owner.click("[data-step=team] a:has-text('Set up')")
    owner.fill("#invite-form input[name=email]", "xu@bamboo.example")
    owner.select_option("#invite-form select[name=role]", "agent")
    owner.click("#invite-form button[type=submit]")
    owner.wait_for_selector("[data-invitation='xu@bamboo.example']")
    invitation = mail.outbox[-1]
    assert invitation.to == ["xu@bamboo.example"]

    agent = chromium.new_context(locale="en-US").new_page()
    agent.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    agent.goto(server + path_of_link(invitation, "/invitations/"))
    agent.fill("#id_name", "Xu Ming")
    agent.fill("#id_password1", "tea-and-dumplings-77")
    agent.click("#accept-invitation")
    agent.wait_for_url(f"{server}/tickets/")
    # Signing out and in again works with the new password.
    agent.context.clear_cookies()
    agent.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    agent.goto(f"{server}/login/")
    agent.fill("input[name=username]", "xu@bamboo.example")
    agent.fill("input[name=password]", "tea-and-dumplings-77")
    agent.click("button[type=submit]")
    agent.wait_for_url(f"{server}/tickets/")

    # 7. The owner imports 10,000 orders and watches the bar fill.
    owner.goto(f"{server}/onboarding/")
    owner.click("[data-step=import] a:has-text('Set up')")
    owner.check("input[name=kind][value=orders]")
    owner.set_input_files(
        "input[name=file]",
        files=[{"name": "orders.csv", "mimeType": "text/csv", "buffer": orders_csv()}],
    )
    owner.click("button[name=upload]")
    owner.wait_for_selector("table.import-preview")
    assert owner.input_value("select[name=column_0]") == "number"  # 订单号, in Chinese
    owner.click("button[name=start]")
    owner.locator("[data-progress-bar]").wait_for()
    seen: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if owner.locator(".import-progress[data-state=done]").count():
            break
        value = owner.evaluate("document.querySelector('[data-progress-bar]')?.value ?? null")
        if value is not None and (not seen or seen[-1] != value):
            seen.append(int(value))
        owner.wait_for_timeout(150)
    owner.wait_for_selector(".import-progress[data-state=done]", timeout=10_000)
    assert any(0 < value < 100 for value in seen), f"the bar never moved: {seen}"
    owner.wait_for_selector(f"[data-count=created]:has-text('{ORDERS}')", timeout=10_000)
    assert owner.locator("[data-count=failed]").inner_text() == "0"

    # 8. The agent opens the customer's mail: the orders the import brought are beside it.
    agent.goto(f"{server}/tickets/")
    agent.locator("table.tickets a", has_text="我的乌龙茶还没到").click()
    agent.wait_for_url(f"{server}/tickets/{ticket.number}/**")
    card = agent.locator(".customer-card")
    card.get_by_text("BT00007").first.wait_for(timeout=10_000)
    assert "BT02007" in card.inner_text()  # the same buyer's other orders too

    owner.goto(f"{server}/onboarding/")
    assert owner.inner_text("#onboarding-count") == "4 of 7 done"
    for key in ("email", "chat", "team", "import"):
        assert step_state(owner, key) == "done", key
