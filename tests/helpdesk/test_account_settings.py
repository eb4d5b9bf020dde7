"""The account page: the merchant's name, logo, currency, time zone and languages."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from helpdesk import tenancy
from helpdesk.models import Tenant
from tests.conftest import login

pytestmark = pytest.mark.django_db

ACCOUNT = "/settings/account/"
LOGO = "/settings/account/logo/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def image_bytes(image_format: str = "PNG", size: tuple[int, int] = (64, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=image_format)
    return out.getvalue()


def account_form(**changes: object) -> dict[str, object]:
    form: dict[str, object] = {
        "name": "Acme 家电",
        "default_currency": "CNY",
        "time_zone": "Asia/Shanghai",
        "locale": "zh-hans",
        "customer_languages": ["zh-hans", "en"],
    }
    form.update(changes)
    return form


def audit_rows(tenant: Tenant) -> list[tuple[str, dict]]:
    from tickets.models import AuditEvent

    with tenancy.activate(tenant):
        return list(AuditEvent.objects.order_by("pk").values_list("action", "changes"))


def test_renaming_the_merchant_is_audited_and_the_slug_stays(tenant_acme, owner_chen):
    client = login(owner_chen)
    page = client.get(ACCOUNT).content.decode()
    assert "<code>acme</code>" in page and "never changes" in page
    response = client.post(ACCOUNT, account_form(name="Acme Home 家电旗舰店", slug="hijack"))
    assert response.status_code == 302
    tenant_acme.refresh_from_db()
    assert (tenant_acme.name, tenant_acme.slug) == ("Acme Home 家电旗舰店", "acme")
    assert audit_rows(tenant_acme) == [
        ("merchant.settings_changed", {"name": ["Acme 家电", "Acme Home 家电旗舰店"]})
    ]
    assert "Acme Home 家电旗舰店" in client.get(ACCOUNT).content.decode()
    # The same form again changes nothing and writes nothing.
    client.post(ACCOUNT, account_form(name="Acme Home 家电旗舰店"))
    assert len(audit_rows(tenant_acme)) == 1


def test_currency_time_zone_and_languages_are_saved(tenant_acme, admin_zhao):
    response = login(admin_zhao).post(
        ACCOUNT,
        account_form(
            default_currency="USD",
            time_zone="America/New_York",
            locale="en",
            customer_languages=["ja"],
        ),
    )
    assert response.status_code == 302
    tenant_acme.refresh_from_db()
    assert tenant_acme.default_currency == "USD"
    assert tenant_acme.time_zone == "America/New_York"
    assert tenant_acme.locale == "en"
    # The default language is always offered.
    assert tenant_acme.customer_languages == ["en", "ja"]
    [(action, changes)] = audit_rows(tenant_acme)
    assert changes["time_zone"] == ["Asia/Shanghai", "America/New_York"]


def test_a_time_zone_or_currency_that_does_not_exist_is_refused(tenant_acme, owner_chen):
    client = login(owner_chen)
    response = client.post(ACCOUNT, account_form(time_zone="Mars/Olympus"))
    assert response.status_code == 400
    response = client.post(ACCOUNT, account_form(default_currency="XXQ"))
    assert response.status_code == 400
    tenant_acme.refresh_from_db()
    assert (tenant_acme.time_zone, tenant_acme.default_currency) == ("Asia/Shanghai", "CNY")
    assert audit_rows(tenant_acme) == []


def test_supervisors_and_agents_may_not_change_the_account(tenant_acme, supervisor_wang, agent_li):
    for person in (supervisor_wang, agent_li):
        assert login(person).get(ACCOUNT).status_code == 403
        assert login(person).post(ACCOUNT, account_form(name="Hacked")).status_code == 403
    tenant_acme.refresh_from_db()
    assert tenant_acme.name == "Acme 家电"


def test_admins_see_no_export_or_deletion_but_owners_do(tenant_acme, admin_zhao, owner_chen):
    admin_page = login(admin_zhao).get(ACCOUNT).content.decode()
    assert "/settings/account/delete/" not in admin_page
    owner_page = login(owner_chen).get(ACCOUNT).content.decode()
    assert "/settings/account/delete/" in owner_page
    assert "/settings/account/export/" in owner_page


def test_a_logo_is_saved_shown_in_the_header_and_served_publicly(tenant_acme, owner_chen):
    client = login(owner_chen)
    upload = SimpleUploadedFile("logo.png", image_bytes(), content_type="image/png")
    assert client.post(LOGO, {"logo": upload}).status_code == 302
    tenant_acme.refresh_from_db()
    assert tenant_acme.logo.name.startswith(f"logos/{tenant_acme.pk}/")
    page = client.get("/tickets/").content.decode()
    assert 'src="/logo/acme/?v=' in page
    served = Client().get("/logo/acme/")  # nobody signed in
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content) == image_bytes()
    assert audit_rows(tenant_acme)[0][0] == "merchant.logo_changed"


def test_replacing_the_logo_removes_the_old_file(
    tenant_acme, owner_chen, media, django_capture_on_commit_callbacks
):
    client = login(owner_chen)
    client.post(LOGO, {"logo": SimpleUploadedFile("a.png", image_bytes())})
    tenant_acme.refresh_from_db()
    first = media / tenant_acme.logo.name
    assert first.exists()
    webp = SimpleUploadedFile("b.webp", image_bytes("WEBP"), content_type="image/webp")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(LOGO, {"logo": webp}).status_code == 302
    tenant_acme.refresh_from_db()
    assert tenant_acme.logo.name.endswith(".webp")
    assert not first.exists()
    assert Client().get("/logo/acme/")["Content-Type"] == "image/webp"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(LOGO, {"remove": "1"})
    tenant_acme.refresh_from_db()
    assert not tenant_acme.logo
    assert Client().get("/logo/acme/").status_code == 404


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("logo.png", b"just some text, not an image\n" * 10, "PNG, JPEG or WebP"),
        ("logo.png", image_bytes("GIF"), "PNG, JPEG or WebP"),
        ("logo.png", image_bytes("PNG", (1025, 10)), "1024x1024"),
        ("logo.png", image_bytes("PNG")[:40], "PNG, JPEG or WebP"),
    ],
    ids=["text-renamed-png", "gif", "too-wide", "truncated"],
)
def test_a_file_that_is_not_an_acceptable_image_is_refused(
    tenant_acme, owner_chen, name, content, reason
):
    upload = SimpleUploadedFile(name, content, content_type="image/png")
    response = login(owner_chen).post(LOGO, {"logo": upload})
    assert response.status_code == 400
    assert reason in response.content.decode()
    tenant_acme.refresh_from_db()
    assert not tenant_acme.logo
    assert audit_rows(tenant_acme) == []


def test_a_logo_over_one_megabyte_is_refused(tenant_acme, owner_chen):
    # A real PNG, padded past 1 MB with a private chunk after the image data.
    big = image_bytes() + b"\0" * (1024 * 1024)
    response = login(owner_chen).post(LOGO, {"logo": SimpleUploadedFile("big.png", big)})
    assert response.status_code == 400
    assert "at most 1024 KB" in response.content.decode()
    tenant_acme.refresh_from_db()
    assert not tenant_acme.logo


def test_the_account_page_shows_each_groups_hours_and_links_to_them(tenant_acme, owner_chen):
    from tickets.models import Group

    with tenancy.activate(tenant_acme):
        group = Group.objects.create(
            name="售后",
            always_open=False,
            weekly_hours=[[["09:00", "18:00"]]] * 5 + [[], []],
        )
    page = login(owner_chen).get(ACCOUNT).content.decode()
    assert f'href="/settings/groups/{group.pk}/#hours"' in page
    assert "09:00-18:00" in page


def test_another_merchants_logo_is_not_served_by_name_of_a_missing_one(tenant_globex):
    assert Client().get("/logo/globex/").status_code == 404
    assert Client().get("/logo/nobody/").status_code == 404


def test_the_audit_log_reads_the_change_in_words(tenant_acme, owner_chen):
    client = login(owner_chen)
    client.post(ACCOUNT, account_form(time_zone="Europe/Berlin", locale="en"))
    page = client.get("/settings/audit/").content.decode()
    assert "Account settings changed" in page
    assert "Time zone" in page and "Europe/Berlin" in page
    assert "Default language" in page and "English" in page
