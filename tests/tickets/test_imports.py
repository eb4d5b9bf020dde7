"""Settings → Import: an admin brings customers and orders in from CSV and XLSX files.

What a merchant relies on: good rows import and bad ones are reported by the line they see in
their spreadsheet; importing the same file again changes nothing; Chinese headers in a GBK file
are recognised; ten thousand orders import in seconds with a progress that reaches 100%; only
owners and admins may import, and one merchant's import never touches another's customers.
"""

from __future__ import annotations

import io
import time
import zipfile
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from helpdesk import tenancy
from tests.conftest import login
from tests.factories import CustomerFactory, OrderFactory
from tickets.models import AuditEvent, Customer, CustomerIdentity, ImportJob, Order, OrderLine

pytestmark = pytest.mark.django_db

ORDERS_CSV = """Order number,Email,Customer name,Status,Currency,Total,Placed at,SKU,Product,Quantity,Unit price
SO-1001,li.wei@example.cn,李伟,paid,CNY,598.00,2026-03-01 10:00,HOOD-1,Range hood,2,299.00
SO-1002,wang@example.cn,王芳,shipped,CNY,12.5x,2026-03-02,KET-1,Kettle,1,12.50
SO-1003,zhao@example.cn,赵磊,paid,CNY,88.00,2026-03-03 09:30,PAN-1,Pan,1,88.00
SO-1004,not-an-email,钱,paid,CNY,10.00,2026-03-04,CUP-1,Cup,1,10.00
SO-1005,sun@example.cn,孙,paid,DOLLARS,10.00,2026-03-05,CUP-1,Cup,1,10.00
SO-1006,zhou@example.cn,周,paid,CNY,10.00,someday,CUP-1,Cup,1,10.00
,wu@example.cn,吴,paid,CNY,10.00,2026-03-07,CUP-1,Cup,1,10.00
SO-1008,zheng@example.cn,郑,paid,CNY,10.001,2026-03-08,CUP-1,Cup,1,10.00
SO-1009,feng@example.cn,冯,paid,CNY,30.00,2026-03-09,MUG-1,Mug,1,10.00
SO-1009,feng@example.cn,冯,paid,CNY,30.00,2026-03-09,MUG-2,Big mug,1,20.00
"""


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def csv_file(text: str, name: str = "orders.csv", encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def upload(client, kind: str, file: SimpleUploadedFile):
    return client.post(reverse("settings:imports"), {"kind": kind, "file": file})


def mapping_form(job: ImportJob) -> dict[str, str]:
    """The mapping page's form as it is offered: the guessed field for each column."""
    by_column = {column: key for key, column in job.mapping.items()}
    return {f"column_{i}": by_column.get(i, "") for i in range(len(job.headers))}


def latest_job(tenant) -> ImportJob:
    with tenancy.activate(tenant):  # row-level security: a merchant's rows need the merchant
        return ImportJob.objects.latest("pk")


def run_import(client, kind: str, file, capture, tenant) -> ImportJob:
    """Upload, accept the guessed columns and start: the (eager) task runs after commit."""
    response = upload(client, kind, file)
    assert response.status_code == 302, response.content.decode()[:2000]
    job = latest_job(tenant)
    with capture(execute=True):
        response = client.post(reverse("settings:import", args=[job.pk]), mapping_form(job))
    assert response.status_code == 302, response.content.decode()[:2000]
    return latest_job(tenant)


def row_errors(job: ImportJob) -> list:
    with tenancy.activate(job.tenant):
        return list(job.row_errors.order_by("line", "pk"))


def audit_count(tenant) -> int:
    with tenancy.activate(tenant):
        return AuditEvent.objects.count()


@pytest.fixture
def admin(admin_zhao):
    return login(admin_zhao)


def test_good_rows_import_and_bad_rows_are_reported_by_their_line(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    job = run_import(
        admin, "orders", csv_file(ORDERS_CSV), django_capture_on_commit_callbacks, tenant_acme
    )

    assert job.state == ImportJob.State.DONE
    assert (job.created_count, job.updated_count, job.unchanged_count) == (3, 0, 0)
    assert job.failed_count == 6
    page = admin.get(reverse("settings:import", args=[job.pk])).content.decode()
    assert "Rows not imported" in page
    errors = {
        error.line: (error.column, error.message) for error in row_errors(job)
    }  # the header is line 1
    assert errors[3] == ("Total", "12.5x is not an amount")
    assert errors[5][0] == "Email" and "not an email address" in errors[5][1]
    assert errors[6] == ("Currency", "DOLLARS is not a currency code")
    assert errors[7] == ("Placed at", "someday is not a date")
    assert errors[8] == ("Order number", "Enter an order number")
    assert errors[9] == ("Total", "CNY amounts have at most 2 decimal places")
    with tenancy.activate(tenant_acme):
        assert sorted(Order.objects.values_list("number", flat=True)) == [
            "SO-1001",
            "SO-1003",
            "SO-1009",
        ]
        hood = Order.objects.get(number="SO-1001")
        assert hood.total_amount == Decimal("598.00") and hood.currency == "CNY"
        assert hood.paid_amount == Decimal("598.00")  # paid, with no paid column: in full
        assert hood.placed_at == datetime(2026, 3, 1, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert hood.customer.name == "李伟"
        assert hood.customer.primary_email == "li.wei@example.cn"
        # Two rows with one number are one order with two lines.
        mugs = Order.objects.get(number="SO-1009")
        assert sorted(mugs.lines.values_list("sku", "unit_price_amount")) == [
            ("MUG-1", Decimal("10.0000")),
            ("MUG-2", Decimal("20.0000")),
        ]
        # One summary row in the audit log, not one per order.
        [event] = AuditEvent.objects.filter(action="data.imported")
        assert event.changes["details"]["created"] == 3

    report = admin.get(reverse("settings:import_errors", args=[job.pk]))
    assert report.status_code == 200
    text = report.content.decode("utf-8-sig")
    assert "Line,Column,Problem,Row" in text.splitlines()[0]
    assert '3,Total,12.5x is not an amount,"SO-1002' in text


def test_importing_the_same_file_again_changes_nothing(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    first = run_import(
        admin, "orders", csv_file(ORDERS_CSV), django_capture_on_commit_callbacks, tenant_acme
    )
    assert first.created_count == 3

    def stored() -> dict[str, object]:
        with connection.cursor() as cursor, tenancy.activate(tenant_acme):
            rows = {}
            for table in ("tickets_order", "tickets_orderline", "tickets_customer"):
                cursor.execute(f"SELECT id, xmin::text FROM {table} ORDER BY id")
                rows[table] = cursor.fetchall()
            return rows

    before = stored()
    audit_rows = audit_count(tenant_acme)
    second = run_import(
        admin, "orders", csv_file(ORDERS_CSV), django_capture_on_commit_callbacks, tenant_acme
    )

    assert second.state == ImportJob.State.DONE
    assert (second.created_count, second.updated_count) == (0, 0)
    assert second.unchanged_count == 3
    assert second.failed_count == 6  # the bad rows are still bad
    # Not a row rewritten (PostgreSQL gives a rewritten row a new xmin), no new audit row.
    assert stored() == before
    assert audit_count(tenant_acme) == audit_rows


def test_a_changed_row_updates_its_order_and_replaces_its_lines(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    run_import(
        admin, "orders", csv_file(ORDERS_CSV), django_capture_on_commit_callbacks, tenant_acme
    )
    changed = ORDERS_CSV.replace(
        "SO-1001,li.wei@example.cn,李伟,paid", "SO-1001,li.wei@example.cn,李伟,shipped"
    )
    changed = changed.replace("MUG-2,Big mug,1,20.00", "MUG-3,Small mug,1,20.00")
    job = run_import(
        admin, "orders", csv_file(changed), django_capture_on_commit_callbacks, tenant_acme
    )
    assert (job.created_count, job.updated_count, job.unchanged_count) == (0, 2, 1)
    with tenancy.activate(tenant_acme):
        assert Order.objects.get(number="SO-1001").status == "shipped"
        assert sorted(
            OrderLine.objects.filter(order__number="SO-1009").values_list("sku", flat=True)
        ) == [
            "MUG-1",
            "MUG-3",
        ]


def test_an_xlsx_workbook_imports_with_its_dates_and_numbers(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Customer ID", "Name", "Email", "Phone", "VIP", "Notes"])
    sheet.append(["C-1", "李伟", "Li.Wei@Example.cn", 13800138000, "yes", "Prefers calls"])
    sheet.append(["C-2", "Anna", "anna@example.com", "+1 415 555 0100", "no", ""])
    sheet.append([])
    sheet.append(["C-3", "Bad phone", "", "12", "", ""])
    content = io.BytesIO()
    workbook.save(content)
    file = SimpleUploadedFile("customers.xlsx", content.getvalue())

    job = run_import(admin, "customers", file, django_capture_on_commit_callbacks, tenant_acme)

    assert job.format == "xlsx"
    assert (job.created_count, job.failed_count, job.total_rows) == (2, 1, 3)
    [error] = row_errors(job)
    assert (error.line, error.column) == (5, "Phone")  # the empty row 4 keeps its number
    with tenancy.activate(tenant_acme):
        li = Customer.objects.get(external_id="C-1")
        assert li.name == "李伟" and li.is_vip and li.notes == "Prefers calls"
        assert set(li.identities.values_list("kind", "value")) == {
            ("email", "li.wei@example.cn"),
            ("phone", "+8613800138000"),
        }


def test_an_xlsx_with_excel_dates_imports_orders(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["订单号", "手机", "下单时间", "发货时间", "金额"])
    sheet.append(["A-1", "13800138000", datetime(2026, 5, 1, 8, 30), 46143.5, 100])
    content = io.BytesIO()
    workbook.save(content)
    job = run_import(
        admin,
        "orders",
        SimpleUploadedFile("o.xlsx", content.getvalue()),
        django_capture_on_commit_callbacks,
        tenant_acme,
    )
    assert job.created_count == 1, [e.message for e in row_errors(job)]
    with tenancy.activate(tenant_acme):
        order = Order.objects.get(number="A-1")
        shanghai = ZoneInfo("Asia/Shanghai")
        assert order.placed_at == datetime(2026, 5, 1, 8, 30, tzinfo=shanghai)
        assert order.shipped_at == datetime(2026, 5, 1, 12, 0, tzinfo=shanghai)  # serial 46143.5
        assert order.total_amount == Decimal("100") and order.currency == "CNY"


def test_a_gbk_csv_with_chinese_headers_is_mapped_by_itself(admin, tenant_acme):
    text = (
        "订单号;客户邮箱;收货人;订单状态;实付金额;下单时间;快递公司;运单号\n"
        "DD-1;li@example.cn;李伟;已发货;99.00;2026年3月1日;顺丰;SF123\n"
    )
    response = upload(admin, "orders", csv_file(text, "订单.csv", encoding="gbk"))
    assert response.status_code == 302
    job = latest_job(tenant_acme)
    assert job.encoding == "gb18030" and job.delimiter == ";"
    assert job.headers[0] == "订单号"
    assert job.mapping == {
        "number": 0,
        "customer_email": 1,
        "customer_name": 2,
        "status": 3,
        "paid_amount": 4,
        "placed_at": 5,
        "carrier": 6,
        "tracking_number": 7,
    }
    page = admin.get(reverse("settings:import", args=[job.pk])).content.decode()
    assert "顺丰" in page and "SF123" in page  # the preview, decoded


def test_a_utf8_csv_with_a_bom_and_tabs(admin, tenant_acme, django_capture_on_commit_callbacks):
    text = "\ufeffemail\tname\tlanguage\nli@example.cn\t李伟\tzh_CN\n"
    job = run_import(
        admin, "customers", csv_file(text, "c.tsv"), django_capture_on_commit_callbacks, tenant_acme
    )
    assert job.headers == ["email", "name", "language"]
    assert job.created_count == 1
    with tenancy.activate(tenant_acme):
        assert Customer.objects.get(name="李伟").locale == "zh-cn"


def test_ten_thousand_orders_import_fast_with_progress_reaching_all_rows(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    lines = ["number,email,name,total,paid,currency,placed at,sku,product,qty,price"]
    for i in range(10_000):
        lines.append(
            f"N{i:05d},buyer{i % 4000}@example.cn,Buyer {i % 4000},19.90,19.90,CNY,"
            f"2026-03-{i % 28 + 1:02d} 12:00,SKU-{i % 50},Product {i % 50},1,19.90"
        )
    started = time.monotonic()
    job = run_import(
        admin, "orders", csv_file("\n".join(lines)), django_capture_on_commit_callbacks, tenant_acme
    )
    took = time.monotonic() - started

    assert job.state == ImportJob.State.DONE
    assert (job.total_rows, job.processed_rows, job.created_count) == (10_000, 10_000, 10_000)
    assert job.failed_count == 0
    progress = admin.get(reverse("settings:import_progress", args=[job.pk])).json()
    assert progress["percent"] == 100 and progress["processed_rows"] == 10_000
    with tenancy.activate(tenant_acme):
        assert Order.objects.count() == 10_000
        assert OrderLine.objects.count() == 10_000
        assert Customer.objects.count() == 4_000  # one per buyer, found again for their next order
    print(f"10,000 orders imported in {took:.1f} s")
    assert took < 20


@pytest.mark.parametrize("role_fixture", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_may_not_import(request, role_fixture, admin, tenant_acme):
    upload(admin, "customers", csv_file("email\nli@example.cn\n"))
    job = latest_job(tenant_acme)
    person = login(request.getfixturevalue(role_fixture))
    assert person.get(reverse("settings:imports")).status_code == 403
    assert upload(person, "customers", csv_file("email\nx@example.cn\n")).status_code == 403
    assert person.get(reverse("settings:import", args=[job.pk])).status_code == 403
    assert person.get(reverse("settings:import_progress", args=[job.pk])).status_code == 403
    assert person.get(reverse("settings:import_errors", args=[job.pk])).status_code == 403
    with tenancy.activate(tenant_acme):
        assert ImportJob.objects.count() == 1


def test_another_merchants_import_is_404(admin, tenant_globex, owner_chen):
    from tests.factories import MembershipFactory, UserFactory

    globex_admin = MembershipFactory(
        tenant=tenant_globex, user=UserFactory(username="admin.globex"), role="admin"
    ).user
    globex = login(globex_admin)
    upload(globex, "customers", csv_file("email\nli@example.com\n"))
    job = latest_job(tenant_globex)
    for name in ("settings:import", "settings:import_progress", "settings:import_errors"):
        assert admin.get(reverse(name, args=[job.pk])).status_code == 404
    assert login(owner_chen).get(reverse("settings:import", args=[job.pk])).status_code == 404
    assert globex.get(reverse("settings:import", args=[job.pk])).status_code == 200


def test_an_upsert_never_touches_another_merchants_customer(
    admin, tenant_acme, tenant_globex, django_capture_on_commit_callbacks
):
    with tenancy.activate(tenant_globex):
        theirs = CustomerFactory(name="Globex Li", email="li@example.com")
        theirs.external_id = "C-1"
        theirs.save()
        OrderFactory(customer=theirs, number="SO-1", currency="USD")
    text = "customer id,email,name,order number,total,placed at\nC-1,li@example.com,Acme Li,SO-1,5.00,2026-03-01\n"
    job = run_import(
        admin, "orders", csv_file(text), django_capture_on_commit_callbacks, tenant_acme
    )
    assert job.created_count == 1
    with tenancy.activate(tenant_acme):
        ours = Customer.objects.get(external_id="C-1")
        assert ours.name == "Acme Li" and ours.orders.get().number == "SO-1"
    with tenancy.activate(tenant_globex):
        theirs.refresh_from_db()
        assert theirs.name == "Globex Li"
        assert theirs.orders.get().currency == "USD"
        assert CustomerIdentity.objects.filter(customer=theirs).count() == 1


def test_customers_are_matched_by_external_id_then_email(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    with tenancy.activate(tenant_acme):
        known = CustomerFactory(name="", email="li@example.cn")
        other = CustomerFactory(name="Wang", email="wang@example.cn")
    text = (
        "customer id,email,name,vip\n"
        "C-9,li@example.cn,李伟,yes\n"  # found by email: learns the id
        "C-9,,Li Wei,\n"  # found by the id now: renamed
        "C-10,wang@example.cn,,\n"  # Wang has no id yet: gets this one
        "C-11,li@example.cn,,\n"  # li's email is C-9's: the row says two people
        "C-12,,,maybe\n"
    )
    job = run_import(
        admin, "customers", csv_file(text), django_capture_on_commit_callbacks, tenant_acme
    )
    assert (job.created_count, job.updated_count, job.failed_count) == (0, 3, 2)
    errors = {e.line: e.message for e in row_errors(job)}
    assert errors[5] == "This customer already has the id C-9 in your system"
    assert errors[6] == "maybe is neither yes nor no"
    with tenancy.activate(tenant_acme):
        known.refresh_from_db()
        other.refresh_from_db()
        assert (known.external_id, known.name, known.is_vip) == ("C-9", "Li Wei", True)
        assert other.external_id == "C-10"


def test_the_mapping_needs_the_required_columns(admin, tenant_acme):
    upload(admin, "orders", csv_file("foo,bar\n1,2\n"))
    job = latest_job(tenant_acme)
    assert job.mapping == {}
    response = admin.post(reverse("settings:import", args=[job.pk]), mapping_form(job))
    assert response.status_code == 400
    assert "Choose the column that holds: Order number" in response.content.decode()
    response = admin.post(
        reverse("settings:import", args=[job.pk]), {"column_0": "number", "column_1": "number"}
    )
    assert response.status_code == 400
    assert "is already the column foo" in response.content.decode()
    assert latest_job(tenant_acme).state == ImportJob.State.MAPPING


def test_a_file_over_the_limit_is_a_form_error(admin, settings, tenant_acme):
    settings.HELPDESK_IMPORT_MAX_BYTES = 100
    response = upload(admin, "customers", csv_file("email\n" + "x@example.cn\n" * 20))
    assert response.status_code == 400
    assert "The file is larger than 0 MB" in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not ImportJob.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The submitted file is empty."),
        (b"\xd0\xcf\x11\xe0rest", "Old Excel files (.xls) cannot be read"),
        (b"PK\x03\x04garbage", "The file is not a readable XLSX workbook."),
    ],
)
def test_unreadable_files_are_form_errors(admin, content, message):
    response = upload(admin, "orders", SimpleUploadedFile("x.csv", content))
    assert response.status_code == 400
    assert message in response.content.decode()


def test_a_file_with_more_rows_than_allowed_fails_without_importing(
    admin, tenant_acme, settings, django_capture_on_commit_callbacks
):
    settings.HELPDESK_IMPORT_MAX_ROWS = 3
    text = "email\n" + "".join(f"p{i}@example.cn\n" for i in range(4))
    job = run_import(
        admin, "customers", csv_file(text), django_capture_on_commit_callbacks, tenant_acme
    )
    assert job.state == ImportJob.State.FAILED
    assert "more than 3 rows" in job.failure
    with tenancy.activate(tenant_acme):
        assert not Customer.objects.exists()


def test_an_xlsx_that_unpacks_to_far_more_than_its_size_is_refused(admin, settings):
    settings.HELPDESK_IMPORT_MAX_BYTES = 20_000
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", " " * 5_000_000)  # 5 MB of nothing
    assert len(content.getvalue()) < 20_000
    response = upload(admin, "customers", SimpleUploadedFile("bomb.xlsx", content.getvalue()))
    assert response.status_code == 400
    assert "unpacks to far more than its size" in response.content.decode()


def test_has_completed_import_tells_the_onboarding_checklist(
    admin, tenant_acme, tenant_globex, django_capture_on_commit_callbacks
):
    from tickets.imports import has_completed_import

    with tenancy.activate(tenant_acme):
        assert not has_completed_import()
    run_import(
        admin,
        "customers",
        csv_file("email\nli@example.cn\n"),
        django_capture_on_commit_callbacks,
        tenant_acme,
    )
    with tenancy.activate(tenant_acme):
        assert has_completed_import()
    with tenancy.activate(tenant_globex):
        assert not has_completed_import()


def test_the_import_list_shows_past_imports(admin, tenant_acme, django_capture_on_commit_callbacks):
    run_import(
        admin,
        "customers",
        csv_file("email\nli@example.cn\n", "first.csv"),
        django_capture_on_commit_callbacks,
        tenant_acme,
    )
    page = admin.get(reverse("settings:imports")).content.decode()
    assert "first.csv" in page and "Done" in page
    assert reverse("settings:imports") in admin.get(reverse("settings:members")).content.decode()


def test_odd_cells_are_row_errors_and_never_stop_the_import(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    long_email = "a" * 250 + "@example.cn"
    text = (
        "email,name,language,notes\n"
        f"{long_email},Long,en,\n"
        "li@example.cn,Li\x00 Wei,zh-hans-cn-extra-long,\n"
        'wang@example.cn,Wang,en,"two\nlines"\n'
        "zhao@example.cn,Zhao,zh-hans,\n"
    )
    job = run_import(
        admin, "customers", csv_file(text), django_capture_on_commit_callbacks, tenant_acme
    )
    assert job.state == ImportJob.State.DONE
    assert (job.created_count, job.failed_count) == (2, 2)
    assert [(e.line, e.column) for e in row_errors(job)] == [(2, "email"), (3, "language")]
    with tenancy.activate(tenant_acme):
        assert Customer.objects.get(name="Wang").notes == "two\nlines"


def test_the_audit_log_tells_one_line_per_import(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    job = run_import(
        admin,
        "customers",
        csv_file("email\nli@example.cn\nwang@example.cn\n", "shop-customers.csv"),
        django_capture_on_commit_callbacks,
        tenant_acme,
    )
    page = admin.get(reverse("settings:audit")).content.decode()
    assert page.count("Customers or orders imported from a file") >= 1
    assert "shop-customers.csv" in page
    assert reverse("settings:import", args=[job.pk]) in page
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action="data.imported").count() == 1


def test_excels_unicode_text_and_binary_files(admin, tenant_acme):
    text = "订单号\t邮箱\nDD-1\tli@example.cn\n"
    response = upload(admin, "orders", SimpleUploadedFile("u.txt", text.encode("utf-16")))
    assert response.status_code == 302
    job = latest_job(tenant_acme)
    assert (job.encoding, job.delimiter, job.headers) == ("utf-16", "\t", ["订单号", "邮箱"])
    response = upload(admin, "orders", SimpleUploadedFile("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00"))
    assert response.status_code == 400
    assert "neither CSV nor an Excel workbook" in response.content.decode()


def test_the_error_report_never_hands_a_spreadsheet_a_formula(
    admin, tenant_acme, django_capture_on_commit_callbacks
):
    text = 'email,name\n"=HYPERLINK(""http://evil.example"")",x\n'
    job = run_import(
        admin, "customers", csv_file(text), django_capture_on_commit_callbacks, tenant_acme
    )
    report = admin.get(reverse("settings:import_errors", args=[job.pk])).content.decode("utf-8-sig")
    row = report.splitlines()[1]
    assert row.startswith("2,email,")
    assert ",\"'=HYPERLINK" in row and ",=HYPERLINK" not in row


@pytest.mark.parametrize(
    ("text", "encoding", "found"),
    [
        # Chinese in the header only, then plain ASCII rows: still GBK, not Korean.
        ("订单号,邮箱\n" + "A-1,li@example.cn\n" * 20_000, "gbk", "gb18030"),
        ("name,city\nJosé,Zürich\nRené,Köln\n", "cp1252", "cp1252"),
        ("名稱,城市\n陳大文,臺北\n", "big5", "big5"),
    ],
)
def test_legacy_encodings_are_recognised(admin, tenant_acme, text, encoding, found):
    assert upload(admin, "customers", csv_file(text, encoding=encoding)).status_code == 302
    job = latest_job(tenant_acme)
    assert job.encoding == found
    assert job.headers == text.splitlines()[0].split(",")


def test_a_file_with_too_many_columns_is_a_form_error(admin):
    header = ",".join(f"c{i}" for i in range(201))
    response = upload(admin, "customers", csv_file(header + "\n" + "x," * 200 + "x\n"))
    assert response.status_code == 400
    assert "more than 200 columns" in response.content.decode()
