"""In a real browser: an admin sets a group's routing, weekday hours, a holiday and a member's
capacity on the group's settings page, reloads it and finds everything as they left it."""

from __future__ import annotations

import os

import pytest

from helpdesk import tenancy
from tests.browser.test_live_updates import CHROMIUM, live_asgi_server  # noqa: F401
from tests.browser.test_merchant_settings import chromium, sign_in  # noqa: F401
from tickets.models import Group, GroupMember, RoutingStrategy

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


@pytest.fixture
def after_sales(tenant_acme, agent_li, admin_zhao) -> Group:
    with tenancy.activate(tenant_acme):
        group = Group.objects.create(name="售后 After-sales", strategy=RoutingStrategy.ROUND_ROBIN)
        GroupMember.objects.create(group=group, user=agent_li)
    return group


def test_admin_sets_routing_hours_a_holiday_and_capacity_and_they_are_kept(
    after_sales,
    live_asgi_server,  # noqa: F811
    chromium,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    base = live_asgi_server
    context = chromium.new_context(locale="en-US")
    context.add_cookies([{"name": "django_language", "value": "en", "url": base}])
    page = context.new_page()
    sign_in(page, base, "zhao.acme")

    page.goto(f"{base}/settings/groups/")
    page.click("a:text-is('售后 After-sales')")
    page.wait_for_selector("h1:has-text('售后 After-sales')")

    # Routing: whoever has least work, Chinese-speaking customers.
    page.select_option("#id_strategy", "least_loaded")
    page.fill("#id_languages", "zh")
    page.click("button[name=save-routing]")
    page.wait_for_selector("text=The routing of 售后 After-sales is saved.")

    # Business hours: 9 to 6 on weekdays, in the merchant's time zone.
    assert page.inner_text("#hours-time-zone") == "Times are in Asia/Shanghai."
    page.uncheck("#id_always_open")
    for day in WEEKDAYS:
        page.fill(f"#id_{day}", "9-18")
    page.click("button[name=save-hours]")
    page.wait_for_selector("text=The business hours of 售后 After-sales are saved.")

    # A holiday.
    page.fill("#id_date", "2025-10-01")
    page.fill("#id_name", "国庆节")
    page.click("button[name=add-holiday]")
    page.wait_for_selector("text=售后 After-sales is closed on Oct. 1, 2025.")

    # Li's capacity, in the members table.
    row = page.locator("tr[data-person='li.acme']")
    row.locator("input[name=chat_capacity]").fill("5")
    row.locator("input[name=ticket_capacity]").fill("30")
    row.locator("button[name=save-capacity]").click()
    page.wait_for_selector("text=li.acme now takes up to 5 live conversations and 30 open")

    # A wrong time is refused in words, and what was typed stays in the form.
    page.fill("#id_saturday", "10:00-25:00")
    page.click("button[name=save-hours]")
    page.wait_for_selector(".messages li.error:text-is('Saturday: 25:00 is not a time')")
    assert page.input_value("#id_saturday") == "10:00-25:00"

    page.reload()
    assert page.input_value("#id_strategy") == "least_loaded"
    assert page.input_value("#id_languages") == "zh"
    assert not page.is_checked("#id_always_open")
    for day in WEEKDAYS:
        assert page.input_value(f"#id_{day}") == "09:00-18:00"
    assert page.input_value("#id_saturday") == ""
    assert page.input_value("#id_sunday") == ""
    assert "国庆节" in page.inner_text("tr[data-date='2025-10-01']")
    assert row.locator("input[name=chat_capacity]").input_value() == "5"
    assert row.locator("input[name=ticket_capacity]").input_value() == "30"

    page.goto(f"{base}/settings/groups/")
    listed = page.locator("tr[data-group='售后 After-sales']")
    assert listed.locator("td.strategy").inner_text().startswith("Least loaded")
    assert listed.locator("td.hours").inner_text() == "Business hours"
