"""Money: each currency's decimal places, amounts refused before they reach a limit or a column,
and amounts written as the reader's language writes them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation

from helpdesk.errors import BadInput
from helpdesk.money import (
    checked_amount,
    checked_currency,
    currency_places,
    format_money,
    rounded,
    rounded_down,
)


@pytest.mark.parametrize(
    ("currency", "places"), [("CNY", 2), ("JPY", 0), ("KWD", 3), ("USD", 2), ("cny", 2)]
)
def test_each_currency_has_its_own_decimal_places(currency: str, places: int) -> None:
    assert currency_places(currency) == places


def test_currency_codes_are_upper_cased_and_unknown_ones_refused() -> None:
    assert checked_currency(" cny ") == "CNY"
    for wrong in ["RMB", "", "XYZ1", None]:
        with pytest.raises(BadInput):
            checked_currency(wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("300", "CNY", "300.00"),
        ("0.01", "CNY", "0.01"),
        (" 12.5 ", "USD", "12.50"),
        ("1000", "JPY", "1000"),
        (1000, "JPY", "1000"),
        ("12.345", "KWD", "12.345"),
        ("0.001", "KWD", "0.001"),
        (Decimal("299.0000"), "CNY", "299.00"),  # an order's four places, but whole fen
    ],
)
def test_amounts_within_the_currencys_places_are_kept_exactly(
    value: object, currency: str, expected: str
) -> None:
    amount = checked_amount(value, currency)
    assert isinstance(amount, Decimal)
    assert str(amount) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("0.001", "CNY"),  # a tenth of a fen
        ("12.345", "USD"),
        ("0.5", "JPY"),  # half a yen
        ("1.1", "JPY"),
        ("0.0001", "KWD"),  # a tenth of a fils
        ("-0.01", "CNY"),
        ("abc", "CNY"),
        ("", "CNY"),
        (None, "CNY"),
        (True, "CNY"),
        ("NaN", "CNY"),
        ("Infinity", "CNY"),
        ("1e30", "CNY"),  # past what Decimal can quantize: refused, not a server error
        ("10000000000000000", "CNY"),  # past what an amount column holds
    ],
)
def test_malformed_or_too_fine_amounts_are_refused(value: object, currency: str) -> None:
    with pytest.raises(BadInput) as refused:
        checked_amount(value, currency, field="refund")
    assert refused.value.status == 400
    assert refused.value.extra["field"] == "refund"


def test_floats_are_refused_even_when_they_look_exact() -> None:
    for value in [1.5, 300.0, 0.1]:
        with pytest.raises(BadInput) as refused:
            checked_amount(value, "CNY")
        assert "floating point" in refused.value.message


def test_a_fraction_of_the_smallest_unit_says_how_many_places_the_currency_has() -> None:
    with translation.override("en"), pytest.raises(BadInput) as refused:
        checked_amount("0.5", "JPY")
    assert refused.value.message == "JPY amounts have at most 0 decimal places"


def test_rounding_to_the_smallest_unit() -> None:
    assert rounded(Decimal("33.335"), "CNY") == Decimal("33.34")
    assert rounded_down(Decimal("33.339"), "CNY") == Decimal("33.33")
    assert rounded_down(Decimal("99.9"), "JPY") == Decimal("99")
    assert rounded_down(Decimal("1.2349"), "KWD") == Decimal("1.234")


@pytest.mark.parametrize(
    ("amount", "currency", "english", "chinese"),
    [
        (Decimal("1234.5"), "CNY", "CN¥1,234.50", "¥1,234.50"),
        (Decimal("299.0000"), "CNY", "CN¥299.00", "¥299.00"),
        (Decimal("1000"), "JPY", "¥1,000", "JP¥1,000"),
        (Decimal("12.5"), "KWD", "KWD12.500", "KWD12.500"),
        (Decimal("12.5"), "USD", "$12.50", "US$12.50"),
    ],
)
def test_amounts_are_written_as_the_readers_language_writes_them(
    amount: Decimal, currency: str, english: str, chinese: str
) -> None:
    assert format_money(amount, currency, "en") == english
    assert format_money(amount, currency, "zh-hans") == chinese
    with translation.override("zh-hans"):
        assert format_money(amount, currency) == chinese
    with translation.override("en"):
        assert format_money(amount, currency) == english


def test_an_unknown_language_falls_back_to_english() -> None:
    assert format_money(Decimal("5"), "USD", "xx-nowhere") == "$5.00"


def test_the_money_tag_writes_the_amount_in_the_active_language() -> None:
    template = Template("{% load money %}{% money amount currency %}|{% money None 'CNY' %}")
    with translation.override("zh-hans"):
        shown = template.render(Context({"amount": Decimal("300.0000"), "currency": "CNY"}))
    assert shown == "¥300.00|"
