"""Writing one chunk of an import: a few hundred rows read into customers or orders with a
handful of queries (look up what exists, then bulk create and bulk update), inside the chunk's
transaction.

The rules, in the merchant's words:
- a customer is found by their id in the merchant's system, else by email, else by phone; a
  row that names none of them cannot be imported;
- an order is found by its number; rows with the same number, one after another, are one order
  with one line per row; a new order needs its customer and the time it was placed, and its
  currency is the merchant's unless the file says otherwise (the API's rules: what is left out
  keeps its value, given lines replace the order's lines, nothing refunded beyond what is paid);
- an empty cell changes nothing; a row whose values are those already stored writes nothing
  and counts as unchanged, so importing the same file again changes nothing;
- a row that cannot be read is reported by its line and the rest of the chunk still imports
  (an order with a bad line is not imported at all: half its lines would replace all of them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _

from helpdesk.models import Tenant
from tickets.api_order_sync import ORDER_FIELDS as API_ORDER_FIELDS
from tickets.import_fields import (
    CUSTOMER_KEYS,
    CellProblem,
    cell_text,
    email_value,
    locale_value,
    phone_value,
    text_value,
    yes_no_value,
)
from tickets.import_files import Row
from tickets.models import Customer, CustomerIdentity, IdentityKind, ImportJob, Order, OrderLine

RAW_EXCERPT_CHARS = 200

# The order columns an import may set: the API's own list, less what only refunds change.
IMPORTED_ORDER_FIELDS = tuple(f for f in API_ORDER_FIELDS if f != "refunded_amount")
MAX_LENGTHS = {
    "external_id": Customer._meta.get_field("external_id").max_length,
    "name": Customer._meta.get_field("name").max_length,
    "number": Order._meta.get_field("number").max_length,
    "carrier": Order._meta.get_field("carrier").max_length,
    "tracking_number": Order._meta.get_field("tracking_number").max_length,
    "sku": OrderLine._meta.get_field("sku").max_length,
    "product_name": OrderLine._meta.get_field("product_name").max_length,
    "notes": 10_000,
}


@dataclass(frozen=True)
class RowError:
    line: int
    field: str  # the target field, "" for the row as a whole
    message: str
    raw: str


@dataclass
class ChunkOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed_rows: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    """How a job's rows are read: which column holds which field, in whose terms."""

    mapping: dict[str, int]
    currency: str
    time_zone: str
    region: str

    @classmethod
    def for_job(cls, job: ImportJob, tenant: Tenant) -> Reading:
        return cls(
            mapping={key: int(column) for key, column in job.mapping.items()},
            currency=tenant.default_currency,
            time_zone=tenant.time_zone,
            region=tenant.phone_region,
        )

    def values(self, row: Row) -> dict[str, Any]:
        """The row's non-empty cells by target field."""
        found = {}
        for key, column in self.mapping.items():
            if column < len(row.cells):
                value = row.cells[column]
                if value is not None and cell_text(value) != "":
                    found[key] = value
        return found

    def order_number(self, row: Row) -> str:
        column = self.mapping.get("number")
        if column is None or column >= len(row.cells):
            return ""
        return cell_text(row.cells[column]).lstrip("#").strip()


def raw_excerpt(row: Row) -> str:
    text = ", ".join(cell_text(cell) for cell in row.cells)
    return text if len(text) <= RAW_EXCERPT_CHARS else text[: RAW_EXCERPT_CHARS - 1] + "…"


# --- customers, shared by both kinds of import ------------------------------------------------


@dataclass
class Contact:
    """Who a row is about: a customer's keys and what the row says of them."""

    external_id: str = ""
    email: str = ""
    phone: str = ""
    name: str = ""

    def identities(self) -> list[tuple[str, str]]:
        return [
            (kind, value)
            for kind, value in ((IdentityKind.EMAIL, self.email), (IdentityKind.PHONE, self.phone))
            if value
        ]


class CustomerBook:
    """The customers a chunk's rows name, read in three queries; new customers and contacts are
    kept to be written in bulk, so a later row of the chunk finds a customer an earlier one
    created."""

    def __init__(self, tenant_id: int, contacts: Iterable[Contact]) -> None:
        self.tenant_id = tenant_id
        contacts = list(contacts)
        self.by_pk: dict[int, Customer] = {}
        self.by_external: dict[str, Customer] = {}
        self.by_identity: dict[tuple[str, str], Customer] = {}
        self.new_customers: list[Customer] = []
        self.new_identities: list[CustomerIdentity] = []
        self.changed: dict[int, Customer] = {}
        external_ids = {c.external_id for c in contacts if c.external_id}
        if external_ids:
            for customer in Customer.objects.filter(external_id__in=external_ids):
                self.by_external[customer.external_id] = self._merged_target(customer)
        wanted = Q()
        for contact in contacts:
            for kind, value in contact.identities():
                wanted |= Q(kind=kind, value=value)
        if wanted:
            identities = CustomerIdentity.objects.filter(wanted, account__isnull=True)
            for identity in identities.select_related("customer"):
                self.by_identity[(identity.kind, identity.value)] = self._known(identity.customer)

    def _known(self, customer: Customer) -> Customer:
        """One object per customer, however many rows and lookups name them."""
        return self.by_pk.setdefault(customer.pk, customer)

    def _merged_target(self, customer: Customer) -> Customer:
        seen = set()
        while customer.merged_into_id is not None and customer.pk not in seen:
            seen.add(customer.pk)
            customer = Customer.objects.get(pk=customer.merged_into_id)
        return self._known(customer)

    def find(self, contact: Contact) -> Customer | None:
        """The customer the contact names: by external id, else email, else phone."""
        if contact.external_id and contact.external_id in self.by_external:
            return self.by_external[contact.external_id]
        for key in contact.identities():
            if key in self.by_identity:
                return self.by_identity[key]
        return None

    def create(self, contact: Contact, **fields: Any) -> Customer:
        customer = Customer(
            tenant_id=self.tenant_id,
            external_id=contact.external_id,
            name=contact.name,
            **fields,
        )
        self.new_customers.append(customer)
        if contact.external_id:
            self.by_external[contact.external_id] = customer
        self.learn_identities(customer, contact)
        return customer

    def learn_identities(self, customer: Customer, contact: Contact) -> bool:
        """Give the customer the row's email and phone that nobody has yet; whether any was."""
        learned = False
        for kind, value in contact.identities():
            if (kind, value) not in self.by_identity:
                self.by_identity[(kind, value)] = customer
                self.new_identities.append(
                    CustomerIdentity(
                        tenant_id=self.tenant_id, customer=customer, kind=kind, value=value
                    )
                )
                learned = True
        return learned

    def set_external_id(self, customer: Customer, external_id: str) -> None:
        customer.external_id = external_id
        self.by_external[external_id] = customer
        self.mark_changed(customer)

    def mark_changed(self, customer: Customer) -> None:
        if customer.pk is not None:
            self.changed[customer.pk] = customer

    def save(self) -> None:
        """Write the chunk's new customers and contacts and the changed customers."""
        Customer.objects.bulk_create(self.new_customers)
        CustomerIdentity.objects.bulk_create(self.new_identities)
        if self.changed:
            Customer.objects.bulk_update(
                list(self.changed.values()), ["external_id", "name", "locale", "notes", "is_vip"]
            )


def read_contact(
    values: dict[str, Any], reading: Reading, keys: tuple[str, ...], name: str
) -> Contact:
    external_key, email_key, phone_key = keys
    contact = Contact()
    if external_key in values:
        contact.external_id = text_value(
            external_key, values[external_key], max_length=MAX_LENGTHS["external_id"]
        )
    if email_key in values:
        contact.email = email_value(email_key, values[email_key])
    if phone_key in values:
        contact.phone = phone_value(phone_key, values[phone_key], region=reading.region)
    if name in values:
        contact.name = text_value(name, values[name], max_length=MAX_LENGTHS["name"])
    return contact


# --- customers import --------------------------------------------------------------------------


@dataclass
class CustomerRow:
    row: Row
    contact: Contact
    locale: str = ""
    notes: str = ""
    is_vip: bool | None = None


def _read_customer(row: Row, reading: Reading) -> CustomerRow:
    values = reading.values(row)
    contact = read_contact(values, reading, CUSTOMER_KEYS, "name")
    if not (contact.external_id or contact.email or contact.phone):
        raise CellProblem("", _("Say who the customer is: their id in your system, email or phone"))
    read = CustomerRow(row=row, contact=contact)
    if "locale" in values:
        read.locale = locale_value("locale", values["locale"])
    if "notes" in values:
        read.notes = text_value("notes", values["notes"], max_length=MAX_LENGTHS["notes"])
    if "is_vip" in values:
        read.is_vip = yes_no_value("is_vip", values["is_vip"])
    return read


def _customer_conflict(book: CustomerBook, read: CustomerRow) -> CellProblem | None:
    """A row whose keys name two different customers cannot say which one it means."""
    contact = read.contact
    chosen = book.find(contact)
    if chosen is None:
        return None
    if contact.external_id and chosen.external_id and chosen.external_id != contact.external_id:
        return CellProblem(
            "external_id",
            _("This customer already has the id %(id)s in your system")
            % {"id": chosen.external_id},
        )
    for kind, value, key in (
        (IdentityKind.EMAIL, contact.email, "email"),
        (IdentityKind.PHONE, contact.phone, "phone"),
    ):
        owner = book.by_identity.get((kind, value)) if value else None
        if owner is not None and owner is not chosen:
            message = _("%(value)s belongs to another customer") % {"value": value}
            return CellProblem(key, message)
    return None


def import_customers(rows: list[Row], reading: Reading, tenant_id: int) -> ChunkOutcome:
    """Create or update the customers of one chunk's rows (inside the caller's transaction)."""
    outcome = ChunkOutcome()
    readings: list[CustomerRow] = []
    for row in rows:
        try:
            readings.append(_read_customer(row, reading))
        except CellProblem as problem:
            fail_row(outcome, row, [problem])
    book = CustomerBook(tenant_id, (read.contact for read in readings))
    for read in readings:
        problem = _customer_conflict(book, read)
        if problem is not None:
            fail_row(outcome, read.row, [problem])
            continue
        customer = book.find(read.contact)
        if customer is None:
            book.create(
                read.contact, locale=read.locale, notes=read.notes, is_vip=bool(read.is_vip)
            )
            outcome.created += 1
            continue
        changed = _update_customer(book, customer, read)
        if changed:
            outcome.updated += 1
        else:
            outcome.unchanged += 1
    book.save()
    return outcome


def _update_customer(book: CustomerBook, customer: Customer, read: CustomerRow) -> bool:
    changed = False
    # An id already known names this customer (or one merged into them): nothing to learn.
    if read.contact.external_id and read.contact.external_id not in book.by_external:
        book.set_external_id(customer, read.contact.external_id)
        changed = True
    wanted = {"name": read.contact.name, "locale": read.locale, "notes": read.notes}
    for name, value in wanted.items():
        if value and getattr(customer, name) != value:
            setattr(customer, name, value)
            changed = True
    if read.is_vip is not None and customer.is_vip != read.is_vip:
        customer.is_vip = read.is_vip
        changed = True
    if changed:
        book.mark_changed(customer)
    return book.learn_identities(customer, read.contact) or changed


# --- errors ------------------------------------------------------------------------------------


def fail_row(outcome: ChunkOutcome, row: Row, problems: list[CellProblem]) -> None:
    outcome.failed_rows += 1
    for problem in problems:
        outcome.errors.append(RowError(row.line, problem.field, problem.message, raw_excerpt(row)))
