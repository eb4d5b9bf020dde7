"""In a real browser: an admin imports 10,000 orders from a CSV file. They upload it, choose the
column the helpdesk could not recognise, and watch the progress bar move while a real Celery
worker imports the file in chunks; when it is done the page shows the counts, and a customer's
page lists the orders that came in."""

from __future__ import annotations

import os
import time

import pytest

from helpdesk import tenancy
from tests.browser.conftest import CHROMIUM, browser_page, live_asgi_server, sign_in  # noqa: F401
from tests.channels_in.conftest import real_worker  # noqa: F401
from tickets.models import Customer, ImportJob

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

ROWS = 10_000


def orders_csv() -> bytes:
    # "Ref" names no field the helpdesk knows: the admin says it is the order number.
    lines = ["Ref,Email,Name,Total,Currency,Placed at,SKU,Product,Quantity,Unit price"]
    for i in range(ROWS):
        lines.append(
            f"W{i:05d},buyer{i % 2000}@example.cn,买家{i % 2000},59.00,CNY,"
            f"2026-04-{i % 28 + 1:02d} 09:15,SKU-{i % 40},商品 {i % 40},1,59.00"
        )
    return ("\n".join(lines) + "\n").encode()


def test_an_admin_imports_ten_thousand_orders_and_watches_the_bar_fill(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    real_worker,  # noqa: F811
    admin_zhao,
    tenant_acme,
    settings,
    tmp_path,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = tmp_path
    base, page = live_asgi_server, browser_page
    sign_in(page, base, "zhao.acme")

    page.goto(f"{base}/settings/")
    page.click(".settings-nav a:has-text('Import')")
    page.wait_for_url(f"{base}/settings/imports/")
    page.check("input[name=kind][value=orders]")
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "orders.csv", "mimeType": "text/csv", "buffer": orders_csv()}],
    )
    page.click("button[name=upload]")
    page.wait_for_selector("table.import-preview")

    # The headers it knows are matched already; the preview shows the file's first rows.
    assert page.input_value("select[name=column_1]") == "customer_email"
    assert page.input_value("select[name=column_5]") == "placed_at"
    assert page.locator("table.import-preview tbody tr").count() == 5
    assert page.input_value("select[name=column_0]") == ""
    page.select_option("select[name=column_0]", "number")
    page.click("button[name=start]")

    bar = page.locator("[data-progress-bar]")
    bar.wait_for()
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if page.locator(".import-progress[data-state=done]").count():
            break
        value = page.evaluate("document.querySelector('[data-progress-bar]')?.value ?? null")
        if value is not None and (not seen or seen[-1] != value):
            seen.append(int(value))
        page.wait_for_timeout(150)
    page.wait_for_selector(".import-progress[data-state=done]", timeout=10_000)
    assert any(0 < value < 100 for value in seen), f"the bar never moved between 0 and 100: {seen}"
    assert seen == sorted(seen)

    # When it is done the page shows the whole file imported.
    page.wait_for_selector("[data-count=created]:has-text('10000')", timeout=10_000)
    assert page.locator("[data-progress-percent]").inner_text() == "100"
    assert page.locator("[data-count=failed]").inner_text() == "0"
    assert page.locator("[data-progress-state]").inner_text() == "Done"
    with tenancy.activate(tenant_acme):
        job = ImportJob.objects.get()
        assert (job.state, job.created_count) == (ImportJob.State.DONE, ROWS)
        buyer = Customer.objects.get(identities__value="buyer7@example.cn")

    # An agent's view of the customer lists the orders that came in.
    page.goto(f"{base}/tickets/customers/{buyer.pk}/")
    assert page.locator(".order-count").inner_text() == str(ROWS // 2000)
    assert page.locator("ol.orders").get_by_text("W00007").count() == 1
