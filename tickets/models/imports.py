"""Imports of the merchant's customers and orders from CSV and XLSX files: the job, its column
mapping and progress, and the rows that could not be imported (tickets.imports)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from helpdesk.tenancy import TenantOwned, require_tenant


def import_file_path(instance: ImportJob, filename: str) -> str:
    # The stored name is ours; the merchant's file name is kept in the row.
    tenant_id = instance.tenant_id or require_tenant().pk
    return f"imports/{tenant_id}/{uuid.uuid4().hex}"


class ImportJob(TenantOwned):
    """One uploaded file on its way into the merchant's customers or orders."""

    class Kind(models.TextChoices):
        CUSTOMERS = "customers", _("Customers")
        ORDERS = "orders", _("Orders")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    class State(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        MAPPING = "mapping", _("Choosing columns")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Emptied once the import has finished: the rows are in the merchant's data by then.
    file = models.FileField(upload_to=import_file_path, max_length=255, blank=True)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=8, choices=Format.choices)
    # How a CSV file is read (found when it was uploaded): its encoding and delimiter.
    encoding = models.CharField(max_length=32, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    headers = models.JSONField(default=list, blank=True)
    # {target field: column index}, chosen by the merchant from the guessed one.
    mapping = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPLOADED)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    # Why the whole import stopped (state failed), in the merchant's words.
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["tenant", "state"], name="importjob_state_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.original_name}"

    @property
    def is_finished(self) -> bool:
        return self.state in {self.State.DONE, self.State.FAILED}

    @property
    def percent(self) -> int:
        """How much of the file is processed, 0 to 100."""
        if self.state == self.State.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(100, self.processed_rows * 100 // self.total_rows)


class ImportRowError(TenantOwned):
    """A row of the file that was not imported, and why (the rest of the file still was)."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    # The row as the merchant sees it in a spreadsheet: the header is line 1.
    line = models.PositiveIntegerField()
    column = models.CharField(max_length=255, blank=True)
    message = models.CharField(max_length=500)
    raw = models.CharField(max_length=500, blank=True)  # the start of the row, for recognising it

    class Meta:
        ordering = ["line", "pk"]
        indexes = [models.Index(fields=["tenant", "job", "line"], name="importrowerror_line_idx")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"
