"""In a real browser: an owner renames the merchant and uploads a logo, which then shows in the
header; a text file passed off as a PNG is refused on the page; asking to delete the merchant
puts a banner with a Cancel button on every page, and cancelling takes it away."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from helpdesk.models import Role, Tenant
from tests.browser.conftest import CHROMIUM, sign_in
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 48), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def test_an_owner_renames_uploads_a_logo_and_schedules_then_cancels_deletion(
    live_asgi_server, browser_page, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    tenant = TenantFactory(name="Acme 家电", slug="acme")
    MembershipFactory(tenant=tenant, user=UserFactory(username="chen"), role=Role.OWNER)
    page, server = browser_page, live_asgi_server
    sign_in(page, server, "chen")

    page.goto(f"{server}/settings/account/")
    page.fill("input[name=name]", "Acme Home")
    page.click("button[name=save-account]")
    page.wait_for_selector("text=The account settings are saved.")
    assert page.input_value("input[name=name]") == "Acme Home"

    page.set_input_files(
        "input[name=logo]",
        files=[{"name": "logo.png", "mimeType": "image/png", "buffer": b"not an image at all"}],
    )
    page.click("button[name=upload-logo]")
    page.wait_for_selector("[data-logo-error]")
    assert "PNG, JPEG or WebP" in page.inner_text("[data-logo-error]")
    assert page.locator("[data-tenant-logo]").count() == 0

    page.set_input_files(
        "input[name=logo]",
        files=[{"name": "logo.png", "mimeType": "image/png", "buffer": png_bytes()}],
    )
    page.click("button[name=upload-logo]")
    page.wait_for_selector("text=The logo is saved.")
    logo = page.locator("[data-tenant-logo]")
    assert logo.count() == 1
    # The image really loads (a broken image has no natural width).
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 48

    page.goto(f"{server}/settings/account/delete/")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=slug]", "acme")
    page.click("button[name=request-deletion]")
    page.goto(f"{server}/tickets/")
    banner = page.locator("[data-deletion-banner]")
    assert "will be deleted on" in banner.inner_text()
    banner.locator("button[name=cancel-deletion]").click()
    page.wait_for_selector("text=The deletion is cancelled")
    assert page.locator("[data-deletion-banner]").count() == 0
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert (tenant.name, tenant.deletion_due_at) == ("Acme Home", None)
