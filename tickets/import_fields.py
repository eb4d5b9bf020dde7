"""What a customers or orders file's columns may mean, how a header is recognised (English and
Chinese), and how one cell becomes a value the helpdesk stores.

A cell that cannot be read raises ``CellProblem`` naming the field: the row is reported by its
line, and the rest of the file is still imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from helpdesk.errors import BadInput
from helpdesk.money import checked_amount, checked_currency
from tickets.models import IdentityKind, ImportJob, Order
from tickets.services import normalise_identity


class CellProblem(Exception):
    """One cell of a row cannot be imported; ``field`` is the target field it was meant for."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TargetField:
    key: str
    label: Promise
    aliases: tuple[str, ...] = ()
    required: bool = False


def header_key(header: object) -> str:
    """A header as it is compared: case, spaces and punctuation ignored ("Order No." = "order
    no" = "ORDER_NO")."""
    text = str(header or "").casefold()
    return re.sub(r"[\s_\-.:：#＃()（）/\\'\"]+", "", text)


def _names(*names: str) -> tuple[str, ...]:
    return tuple(header_key(name) for name in names)


CUSTOMER_FIELDS = (
    TargetField(
        "external_id",
        gettext_lazy("Customer id in your system"),
        _names(
            "external id",
            "customer id",
            "customer number",
            "customer no",
            "id",
            "客户编号",
            "客户id",
            "客户号",
            "会员id",
            "会员编号",
            "用户id",
            "外部id",
            "外部编号",
        ),
    ),
    TargetField(
        "name",
        gettext_lazy("Name"),
        _names(
            "name",
            "full name",
            "customer name",
            "customer",
            "姓名",
            "名字",
            "客户名称",
            "客户姓名",
            "客户",
            "名称",
        ),
    ),
    TargetField(
        "email",
        gettext_lazy("Email"),
        _names(
            "email",
            "e-mail",
            "email address",
            "mail",
            "邮箱",
            "电子邮件",
            "电子邮箱",
            "邮件",
            "邮箱地址",
        ),
    ),
    TargetField(
        "phone",
        gettext_lazy("Phone"),
        _names(
            "phone",
            "phone number",
            "mobile",
            "mobile phone",
            "telephone",
            "tel",
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "电话号码",
            "联系电话",
        ),
    ),
    TargetField("locale", gettext_lazy("Language"), _names("locale", "language", "lang", "语言")),
    TargetField(
        "is_vip", gettext_lazy("VIP"), _names("vip", "is vip", "贵宾", "是否vip", "vip客户")
    ),
    TargetField(
        "notes",
        gettext_lazy("Notes"),
        _names("notes", "note", "comment", "comments", "remarks", "备注", "说明"),
    ),
)

ORDER_FIELDS = (
    TargetField(
        "number",
        gettext_lazy("Order number"),
        _names(
            "order number",
            "order no",
            "order",
            "order id",
            "order #",
            "number",
            "订单号",
            "订单编号",
            "订单id",
            "订单号码",
            "单号",
        ),
        required=True,
    ),
    TargetField(
        "customer_external_id",
        gettext_lazy("Customer id in your system"),
        _names(
            "customer id",
            "customer external id",
            "customer number",
            "客户编号",
            "客户id",
            "会员id",
            "买家id",
            "用户id",
            "客户外部编号",
        ),
    ),
    TargetField(
        "customer_email",
        gettext_lazy("Customer email"),
        _names("email", "customer email", "e-mail", "邮箱", "客户邮箱", "买家邮箱", "电子邮件"),
    ),
    TargetField(
        "customer_phone",
        gettext_lazy("Customer phone"),
        _names(
            "phone",
            "customer phone",
            "mobile",
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "联系电话",
            "收货人电话",
            "收货人手机",
            "买家手机",
        ),
    ),
    TargetField(
        "customer_name",
        gettext_lazy("Customer name"),
        _names(
            "customer",
            "customer name",
            "name",
            "客户",
            "客户名称",
            "客户姓名",
            "买家",
            "买家姓名",
            "收货人",
            "收货人姓名",
            "姓名",
        ),
    ),
    TargetField(
        "status", gettext_lazy("Status"), _names("status", "order status", "状态", "订单状态")
    ),
    TargetField("currency", gettext_lazy("Currency"), _names("currency", "币种", "货币")),
    TargetField(
        "total_amount",
        gettext_lazy("Order total"),
        _names(
            "total",
            "order total",
            "total amount",
            "amount",
            "总额",
            "总金额",
            "订单金额",
            "订单总额",
            "金额",
            "应付金额",
        ),
    ),
    TargetField(
        "paid_amount",
        gettext_lazy("Amount paid"),
        _names(
            "paid",
            "paid amount",
            "amount paid",
            "实付",
            "实付金额",
            "已付金额",
            "付款金额",
            "支付金额",
            "实收金额",
        ),
    ),
    TargetField(
        "placed_at",
        gettext_lazy("Placed at"),
        _names(
            "placed at",
            "order date",
            "created at",
            "date",
            "order time",
            "下单时间",
            "订单时间",
            "创建时间",
            "下单日期",
            "付款时间",
        ),
    ),
    TargetField(
        "shipped_at",
        gettext_lazy("Shipped at"),
        _names("shipped at", "ship date", "shipped", "发货时间", "发货日期"),
    ),
    TargetField(
        "delivered_at",
        gettext_lazy("Delivered at"),
        _names("delivered at", "delivery date", "delivered", "签收时间", "收货时间", "送达时间"),
    ),
    TargetField(
        "carrier",
        gettext_lazy("Carrier"),
        _names("carrier", "shipping carrier", "courier", "快递公司", "物流公司", "承运商"),
    ),
    TargetField(
        "tracking_number",
        gettext_lazy("Tracking number"),
        _names(
            "tracking",
            "tracking number",
            "tracking no",
            "tracking code",
            "运单号",
            "快递单号",
            "物流单号",
        ),
    ),
    TargetField(
        "sku", gettext_lazy("Line: SKU"), _names("sku", "商品编码", "商品编号", "货号", "商家编码")
    ),
    TargetField(
        "product_name",
        gettext_lazy("Line: product name"),
        _names(
            "product",
            "product name",
            "item",
            "item name",
            "lineitem name",
            "title",
            "商品",
            "商品名称",
            "宝贝标题",
            "产品名称",
            "商品标题",
        ),
    ),
    TargetField(
        "quantity",
        gettext_lazy("Line: quantity"),
        _names("quantity", "qty", "lineitem quantity", "数量", "购买数量", "商品数量"),
    ),
    TargetField(
        "unit_price",
        gettext_lazy("Line: unit price"),
        _names("unit price", "price", "lineitem price", "单价", "商品单价", "价格"),
    ),
)

EMAIL_MAX_LENGTH = 254  # what a customer's contact holds
LOCALE_MAX_LENGTH = 16

LINE_FIELDS = ("sku", "product_name", "quantity", "unit_price")
CUSTOMER_KEYS = ("external_id", "email", "phone")
ORDER_CUSTOMER_KEYS = ("customer_external_id", "customer_email", "customer_phone")


def fields_for(kind: str) -> tuple[TargetField, ...]:
    return CUSTOMER_FIELDS if kind == ImportJob.Kind.CUSTOMERS else ORDER_FIELDS


def field_label(kind: str, key: str) -> str:
    return next((str(f.label) for f in fields_for(kind) if f.key == key), key)


def guess_mapping(kind: str, headers: list[str]) -> dict[str, int]:
    """``{field: column}`` for the columns whose header names a field; each field at most once
    (the first column that names it)."""
    mapping: dict[str, int] = {}
    for column, header in enumerate(headers):
        key = header_key(header)
        if not key:
            continue
        for field in fields_for(kind):
            if field.key not in mapping and key in field.aliases:
                mapping[field.key] = column
                break
    return mapping


def mapping_problem(kind: str, mapping: dict[str, int]) -> str:
    """Why a column mapping cannot be imported ("" when it can)."""
    for field in fields_for(kind):
        if field.required and field.key not in mapping:
            return _("Choose the column that holds: %(field)s") % {"field": field.label}
    if kind == ImportJob.Kind.CUSTOMERS and not set(CUSTOMER_KEYS) & set(mapping):
        return _(
            "Choose a column that tells customers apart: their id in your system, email or phone"
        )
    return ""


# --- cells -------------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as text: numbers as written (no ".0" on a whole number), dates in ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()


def text_value(field: str, value: Any, *, max_length: int) -> str:
    text = cell_text(value)
    if len(text) > max_length:
        raise CellProblem(field, _("Longer than %(count)s characters") % {"count": max_length})
    return text


def email_value(field: str, value: Any) -> str:
    text = cell_text(value)
    if len(text) > EMAIL_MAX_LENGTH:
        raise CellProblem(field, _("%(value)s is not an email address") % {"value": text[:60]})
    try:
        validate_email(text)
        return normalise_identity(kind=IdentityKind.EMAIL, value=text)
    except (ValidationError, BadInput):
        raise CellProblem(field, _("%(value)s is not an email address") % {"value": text}) from None


def phone_value(field: str, value: Any, *, region: str) -> str:
    text = cell_text(value)
    try:
        return normalise_identity(kind=IdentityKind.PHONE, value=text, region=region)
    except BadInput as exc:
        raise CellProblem(field, exc.message) from None


_TRUE = {"1", "true", "yes", "y", "x", "vip", "是", "对", "真", "√", "✓"}
_FALSE = {"0", "false", "no", "n", "否", "不是", "假", "×"}


def yes_no_value(field: str, value: Any) -> bool:
    text = cell_text(value).casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellProblem(field, _("%(value)s is neither yes nor no") % {"value": cell_text(value)})


def locale_value(field: str, value: Any) -> str:
    text = cell_text(value).replace("_", "-").lower()
    if len(text) > LOCALE_MAX_LENGTH or not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}", text):
        raise CellProblem(
            field, _("%(value)s is not a language code (en, zh-hans)") % {"value": value}
        )
    return text


# What Chinese spreadsheets write for the currencies their shops sell in.
_CURRENCY_WORDS = {"rmb": "CNY", "人民币": "CNY", "元": "CNY", "美元": "USD", "港币": "HKD"}


def currency_value(field: str, value: Any) -> str:
    text = cell_text(value)
    try:
        return checked_currency(_CURRENCY_WORDS.get(text.casefold(), text))
    except BadInput as exc:
        raise CellProblem(field, exc.message) from None


def amount_value(field: str, value: Any, *, currency: str) -> Decimal:
    text = cell_text(value).replace(",", "").replace("¥", "").replace("￥", "").replace("$", "")
    try:
        return checked_amount(text.strip(), currency, field=field)
    except BadInput as exc:
        raise CellProblem(field, exc.message) from None


def quantity_value(field: str, value: Any) -> int:
    text = cell_text(value)
    if not re.fullmatch(r"\d{1,7}", text) or int(text) < 1:
        raise CellProblem(field, _("%(value)s is not a quantity") % {"value": text})
    return int(text)


_STATUS_WORDS = {
    "unpaid": Order.Status.PENDING,
    "pending payment": Order.Status.PENDING,
    "awaiting payment": Order.Status.PENDING,
    "待付款": Order.Status.PENDING,
    "待支付": Order.Status.PENDING,
    "未付款": Order.Status.PENDING,
    "已付款": Order.Status.PAID,
    "已支付": Order.Status.PAID,
    "待发货": Order.Status.PAID,
    "fulfilled": Order.Status.SHIPPED,
    "已发货": Order.Status.SHIPPED,
    "运输中": Order.Status.SHIPPED,
    "completed": Order.Status.DELIVERED,
    "已签收": Order.Status.DELIVERED,
    "已收货": Order.Status.DELIVERED,
    "已完成": Order.Status.DELIVERED,
    "交易成功": Order.Status.DELIVERED,
    "canceled": Order.Status.CANCELLED,
    "已取消": Order.Status.CANCELLED,
    "交易关闭": Order.Status.CANCELLED,
    "已退款": Order.Status.REFUNDED,
    "退款成功": Order.Status.REFUNDED,
}


def status_value(field: str, value: Any) -> str:
    text = cell_text(value).casefold()
    for status in Order.Status:
        if text in {status.value, str(status.label).casefold()}:
            return status.value
    if text in _STATUS_WORDS:
        return _STATUS_WORDS[text].value
    raise CellProblem(
        field,
        _("%(value)s is not an order status (%(statuses)s)")
        % {"value": cell_text(value), "statuses": ", ".join(Order.Status.values)},
    )


# Excel counts days from 1899-12-30; serials between these are 1954 to 2119.
_EXCEL_EPOCH = datetime(1899, 12, 30)
_EXCEL_SERIALS = (20000, 80000)
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
    "%Y%m%d",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d %b %Y",
    "%b %d, %Y",
)
_DAY_FIRST = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def moment_value(field: str, value: Any, *, time_zone: str, region: str) -> datetime:
    """A date or time from a cell: a spreadsheet's date, an Excel serial number, ISO 8601 or a
    common written form (2026-03-01 14:05, 2026/3/1, 2026年3月1日, 01.03.2026, 3/1/2026 as the
    merchant's region writes it). Without a zone it is the merchant's local time."""
    zone = _zone(time_zone)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = _from_serial(field, float(value))
    else:
        moment = _parse_moment(field, cell_text(value), region=region)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not 1900 <= moment.year <= 2200:
        raise CellProblem(field, _("%(value)s is not a date") % {"value": cell_text(value)})
    return moment


def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _from_serial(field: str, serial: float) -> datetime:
    if not _EXCEL_SERIALS[0] <= serial <= _EXCEL_SERIALS[1]:
        raise CellProblem(field, _("%(value)s is not a date") % {"value": cell_text(serial)})
    moment = _EXCEL_EPOCH + timedelta(days=serial)
    return moment.replace(microsecond=0) + timedelta(seconds=round(moment.microsecond / 1e6))


def _parse_moment(field: str, text: str, *, region: str) -> datetime:
    if re.fullmatch(r"\d+(\.\d+)?", text) and not re.fullmatch(r"\d{8}", text):
        number = float(text)
        if number >= 1e12:  # milliseconds since 1970
            return datetime.fromtimestamp(number / 1000, tz=UTC)
        if number >= 1e9:  # seconds since 1970
            return datetime.fromtimestamp(number, tz=UTC)
        return _from_serial(field, number)
    iso = text.replace("Z", "+00:00") if text.endswith("Z") else text
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    found = _DAY_FIRST.fullmatch(text)
    if found:
        first, second, year = (int(found.group(i)) for i in (1, 2, 3))
        # 3/4/2026: the 4th of March in the US, the 3rd of April nearly everywhere else.
        month_first = second > 12 or (first <= 12 and region == "US")
        month, day = (first, second) if month_first else (second, first)
        hour, minute, second_ = (int(found.group(i) or 0) for i in (4, 5, 6))
        try:
            return datetime(year, month, day, hour, minute, second_)
        except ValueError:
            pass
    raise CellProblem(field, _("%(value)s is not a date") % {"value": text})
