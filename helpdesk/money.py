"""Money: a Decimal amount beside an ISO 4217 currency, never a float.

Amount columns hold up to four decimal places (``AMOUNT_FIELD``); how many a given amount may
use is the currency's (CNY and USD 2, JPY 0, KWD 3), from Babel's copy of the CLDR data. Amounts
are shown in the reader's language with ``format_money``.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision, list_currencies
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput

# max_digits / decimal_places of every *_amount column: room for any currency's minor units.
AMOUNT_DIGITS = 19
AMOUNT_PLACES = 4

KNOWN_CURRENCIES = frozenset(list_currencies())

# Every amount is below this: what an amount column holds (15 digits before the point).
AMOUNT_CEILING = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


def currency_places(currency: str) -> int:
    """How many decimal places amounts in ``currency`` have (JPY 0, CNY 2, KWD 3)."""
    return get_currency_precision(currency.upper())


def checked_currency(currency: str) -> str:
    """An ISO 4217 code, upper case; BadInput for anything else."""
    code = (currency or "").strip().upper()
    if code not in KNOWN_CURRENCIES:
        raise BadInput(_("%(currency)s is not a currency code") % {"currency": currency})
    return code


def checked_amount(value: object, currency: str, *, field: str = "amount") -> Decimal:
    """A non-negative amount with no more decimal places than ``currency`` has; BadInput for a
    float, a malformed number, a negative one, one too large to store or a fraction of the
    smallest unit ("0.001 CNY")."""
    if isinstance(value, float):
        raise BadInput(_("Amounts are exact decimals, not floating point"), field=field)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise BadInput(_("%(value)s is not an amount") % {"value": value}, field=field) from None
    if not amount.is_finite() or amount < 0:
        raise BadInput(_("%(value)s is not an amount") % {"value": value}, field=field)
    if amount >= AMOUNT_CEILING:
        # Checked before rounding: a larger number cannot be quantized or stored.
        raise BadInput(_("%(value)s is too large an amount") % {"value": value}, field=field)
    places = currency_places(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise BadInput(
            _("%(currency)s amounts have at most %(places)s decimal places")
            % {"currency": currency, "places": places},
            field=field,
        )
    return amount.quantize(Decimal(1).scaleb(-places))


def rounded(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to the currency's smallest unit (a share of an order, say)."""
    return amount.quantize(Decimal(1).scaleb(-currency_places(currency)), rounding=ROUND_HALF_UP)


def rounded_down(amount: Decimal, currency: str) -> Decimal:
    """``amount`` cut to the currency's smallest unit: a limit is never rounded up."""
    return amount.quantize(Decimal(1).scaleb(-currency_places(currency)), rounding="ROUND_DOWN")


@functools.lru_cache(maxsize=64)
def _locale(code: str) -> Locale:
    """Babel's locale for a Django language code, parsed once per process."""
    code = code.replace("-", "_")
    try:
        return Locale.parse("zh_Hans_CN" if code.lower().startswith("zh") else code)
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def format_money(amount: Decimal, currency: str, language: str | None = None) -> str:
    """The amount as a reader of ``language`` (default: the active one) writes it: ¥300.00,
    US$12.50, ￥1,000, 12.500 KWD."""
    locale = _locale(language or get_language() or "en")
    return format_currency(amount, currency, locale=locale, currency_digits=True)
