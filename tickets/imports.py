"""Importing the merchant's customers and orders from a CSV or XLSX file.

An owner or admin uploads a file (``upload_import``): its first row names the columns, and each
column is matched to a field from its header (English or Chinese). They check the matching and
start the import (``start_import``); a Celery task reads the file in chunks
(``run_import``), each chunk one transaction that creates or updates its rows in bulk
(tickets.import_upsert) and moves the job's progress on, so the page's bar advances and a
worker that dies resumes after the last chunk written. Rows that cannot be imported are kept
with their line and why; the rest of the file imports. One audit row tells what the import
changed.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.import_fields import cell_text, fields_for, guess_mapping, mapping_problem
from tickets.import_files import FileFacts, Row, examine, opened_rows
from tickets.import_orders import import_orders
from tickets.import_upsert import ChunkOutcome, Reading, import_customers
from tickets.models import ImportJob, ImportRowError

logger = logging.getLogger(__name__)

CHUNK_ROWS = 500
PREVIEW_ROWS = 5
MAX_COLUMNS = 200  # each is a choice on the mapping page
# Enough to fix a file by; the counts still tell how many rows failed in all.
MAX_STORED_ERRORS = 10_000
# A running job whose progress has not moved for this long lost its worker: another may resume.
STALE_AFTER = timedelta(minutes=10)


def has_completed_import() -> bool:
    """Whether the active merchant has finished an import (the onboarding checklist's step)."""
    return ImportJob.objects.filter(state=ImportJob.State.DONE).exists()


def access_import_job(acting_agent: ActingAgent, pk: int) -> ImportJob:
    """The active merchant's import ``pk`` for someone who may import; another merchant's id
    is 404, a role that may not import is refused (403)."""
    require(acting_agent, Capability.IMPORT_DATA)
    return get_object_or_404(ImportJob.objects.select_related("created_by"), pk=pk)


def recent_imports(acting_agent: ActingAgent, limit: int = 50) -> list[ImportJob]:
    require(acting_agent, Capability.IMPORT_DATA)
    return list(
        ImportJob.objects.select_related("created_by").order_by("-created_at", "-pk")[:limit]
    )


# --- upload and mapping ------------------------------------------------------------------------


def upload_import(*, acting_agent: ActingAgent, kind: str, upload: UploadedFile) -> ImportJob:
    """Keep an uploaded customers or orders file and read its header: the job waits for its
    columns to be checked. A file over the size limit, empty, or neither CSV nor XLSX is
    refused with the reason."""
    require(acting_agent, Capability.IMPORT_DATA)
    if kind not in ImportJob.Kind.values:
        raise BadInput(_("Choose what the file holds: customers or orders"), field="kind")
    max_bytes = settings.HELPDESK_IMPORT_MAX_BYTES
    if upload.size is None or upload.size > max_bytes:
        raise BadInput(
            _("The file is larger than %(size)s MB: split it into smaller files.")
            % {"size": max_bytes // (1024 * 1024)},
            field="file",
        )
    facts = examine(upload.file, name=upload.name or "", max_bytes=max_bytes)
    headers = _headers(upload.file, facts)
    upload.file.seek(0)
    job = ImportJob(
        kind=kind,
        original_name=(upload.name or "").replace("\x00", "")[:255],
        size=upload.size,
        format=facts.format,
        encoding=facts.encoding,
        delimiter=facts.delimiter,
        headers=headers,
        mapping=guess_mapping(kind, headers),
        state=ImportJob.State.MAPPING,
        created_by=acting_agent.user,
    )
    job.file.save(upload.name or "import", upload, save=False)
    job.save()
    return job


def _headers(source: IO[bytes], facts: FileFacts) -> list[str]:
    with opened_rows(source, facts) as rows:
        header = next(rows, None)
    source.seek(0)
    names = [cell_text(cell) for cell in header.cells] if header is not None else []
    while names and not names[-1]:
        names.pop()  # a sheet's formatted but empty columns
    if not names:
        raise BadInput(_("The first row must name the columns."), field="file")
    if len(names) > MAX_COLUMNS:
        raise BadInput(
            _("The file has more than %(count)s columns: keep the ones to import.")
            % {"count": MAX_COLUMNS},
            field="file",
        )
    return [name or _("Column %(number)s") % {"number": i + 1} for i, name in enumerate(names)]


def preview_rows(job: ImportJob, limit: int = PREVIEW_ROWS) -> list[list[str]]:
    """The first rows under the header, as text, one cell per column of the header."""
    if not job.file:
        return []
    width = len(job.headers)
    found: list[list[str]] = []
    with job.file.open("rb") as source, opened_rows(source, _facts(job)) as rows:
        next(rows, None)
        for row in rows:
            if row.is_empty():
                continue
            cells = [cell_text(cell) for cell in row.cells[:width]]
            found.append(cells + [""] * (width - len(cells)))
            if len(found) >= limit:
                break
    return found


def start_import(
    *, acting_agent: ActingAgent, job: ImportJob, mapping: dict[str, int]
) -> ImportJob:
    """Import the file with this column for each field: queued for a worker after commit.
    Every required field needs its column, and a column serves one field."""
    from tickets import tasks

    require(acting_agent, Capability.IMPORT_DATA)
    keys = {field.key for field in fields_for(job.kind)}
    mapping = {
        key: column
        for key, column in mapping.items()
        if key in keys and 0 <= column < len(job.headers)
    }
    problem = mapping_problem(job.kind, mapping)
    if problem:
        raise BadInput(problem, field="mapping")
    with transaction.atomic():
        job.refresh_from_db(from_queryset=ImportJob.objects.select_for_update())
        if job.state != ImportJob.State.MAPPING:
            raise InvalidTransition(_("This import has already started."))
        job.mapping = mapping
        job.state = ImportJob.State.QUEUED
        job.save(update_fields=["mapping", "state", "updated_at"])
        tasks.run_import.delay_on_commit(job.tenant_id, job.pk)
    return job


def _facts(job: ImportJob) -> FileFacts:
    return FileFacts(format=job.format, encoding=job.encoding, delimiter=job.delimiter)


# --- the worker's part -------------------------------------------------------------------------


def run_import(*, job_id: int) -> ImportJob | None:
    """Import a queued job's file chunk by chunk (or resume one whose worker died); None when
    another worker has it or it is finished."""
    job = _claim(job_id)
    if job is None:
        return None
    try:
        if job.total_rows is None:
            job.total_rows = _count_rows(job)
            ImportJob.objects.filter(pk=job.pk).update(
                total_rows=job.total_rows, updated_at=timezone.now()
            )
        _import_chunks(job)
    except BadInput as exc:
        return _finish(job, failure=exc.message)
    except Exception:
        # Logged for the operators; the merchant sees that it stopped and what got in.
        logger.exception("import %s failed", job.pk)
        return _finish(job, failure=_("The import stopped on an unexpected error. Try it again."))
    return _finish(job)


def _claim(job_id: int) -> ImportJob | None:
    """Take the job for this worker: queued, or running with no progress for a while."""
    now = timezone.now()
    claimable = Q(state=ImportJob.State.QUEUED) | Q(
        state=ImportJob.State.RUNNING, updated_at__lt=now - STALE_AFTER
    )
    taken = ImportJob.objects.filter(claimable, pk=job_id).update(
        state=ImportJob.State.RUNNING, started_at=now, updated_at=now
    )
    return ImportJob.objects.filter(pk=job_id).first() if taken == 1 else None


def _data_rows(source: IO[bytes], job: ImportJob) -> Iterator[Row]:
    with opened_rows(source, _facts(job)) as rows:
        next(rows, None)  # the header
        for row in rows:
            if not row.is_empty():
                yield row


def _count_rows(job: ImportJob) -> int:
    """How many rows the file has under its header; refused past the row limit."""
    limit = settings.HELPDESK_IMPORT_MAX_ROWS
    count = 0
    with job.file.open("rb") as source:
        for _row in _data_rows(source, job):
            count += 1
            if count > limit:
                raise BadInput(
                    _("The file has more than %(count)s rows: split it into smaller files.")
                    % {"count": f"{limit:,}"}
                )
    return count


def _chunks(rows: Iterator[Row], job: ImportJob, reading: Reading) -> Iterator[list[Row]]:
    """Rows in chunks of about CHUNK_ROWS; an order's rows are never split between two."""
    chunk: list[Row] = []
    for row in rows:
        if len(chunk) >= CHUNK_ROWS and (
            job.kind != ImportJob.Kind.ORDERS
            or reading.order_number(row) != reading.order_number(chunk[-1])
        ):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def _import_chunks(job: ImportJob) -> None:
    tenant = require_tenant()
    reading = Reading.for_job(job, tenant)
    seen: dict[str, int] = {}  # order numbers written so far, and their first line
    skip = job.processed_rows  # rows a previous worker already wrote
    with job.file.open("rb") as source:
        rows = _data_rows(source, job)
        for _done in range(skip):
            row = next(rows, None)
            if row is not None and job.kind == ImportJob.Kind.ORDERS:
                seen.setdefault(reading.order_number(row), row.line)
        for chunk in _chunks(rows, job, reading):
            _import_chunk(job, chunk, reading, tenant.pk, seen)


def _import_chunk(
    job: ImportJob, chunk: list[Row], reading: Reading, tenant_id: int, seen: dict[str, int]
) -> None:
    """One chunk and the job's progress, in one transaction; tried again once when a
    customer or order it creates was created by someone else a moment before."""
    for attempt in (1, 2):
        seen_before = dict(seen) if attempt == 1 else seen
        try:
            with transaction.atomic():
                if job.kind == ImportJob.Kind.CUSTOMERS:
                    outcome = import_customers(chunk, reading, tenant_id)
                else:
                    outcome = import_orders(chunk, reading, tenant_id, seen)
                _record_progress(job, len(chunk), outcome)
            return
        except IntegrityError:
            if attempt == 2:
                raise
            seen.clear()
            seen.update(seen_before)


def _record_progress(job: ImportJob, rows: int, outcome: ChunkOutcome) -> None:
    room = MAX_STORED_ERRORS - ImportRowError.objects.filter(job=job).count()
    if room > 0 and outcome.errors:
        headers = job.headers
        mapping = job.mapping
        ImportRowError.objects.bulk_create(
            [
                ImportRowError(
                    tenant_id=job.tenant_id,
                    job=job,
                    line=error.line,
                    column=_column_name(headers, mapping, error.field),
                    message=error.message[:500],
                    raw=error.raw[:500],
                )
                for error in outcome.errors[:room]
            ]
        )
    ImportJob.objects.filter(pk=job.pk).update(
        processed_rows=F("processed_rows") + rows,
        created_count=F("created_count") + outcome.created,
        updated_count=F("updated_count") + outcome.updated,
        unchanged_count=F("unchanged_count") + outcome.unchanged,
        failed_count=F("failed_count") + outcome.failed_rows,
        updated_at=timezone.now(),
    )


def _column_name(headers: list[str], mapping: dict[str, Any], field: str) -> str:
    column = mapping.get(field)
    if isinstance(column, int) and 0 <= column < len(headers):
        return headers[column][:255]
    return ""


def _finish(job: ImportJob, *, failure: str = "") -> ImportJob:
    """Done (or failed, and why), with one audit row when the import changed anything; the
    uploaded file is deleted, its rows being in the merchant's data now."""
    with transaction.atomic():
        job.refresh_from_db(from_queryset=ImportJob.objects.select_for_update())
        job.state = ImportJob.State.FAILED if failure else ImportJob.State.DONE
        job.failure = failure
        job.finished_at = timezone.now()
        stored_file = job.file.name
        job.file = ""
        job.save(update_fields=["state", "failure", "finished_at", "file", "updated_at"])
        if job.created_count or job.updated_count:
            audit.record(
                actor=job.created_by,
                kind=AuditKind.DATA_IMPORTED,
                obj=job,
                details={
                    "kind": job.kind,
                    "file": job.original_name,
                    "rows": job.processed_rows,
                    "created": job.created_count,
                    "updated": job.updated_count,
                    "unchanged": job.unchanged_count,
                    "failed": job.failed_count,
                    **({"reason": failure} if failure else {}),
                },
            )
        if stored_file:
            storage = job.file.storage
            transaction.on_commit(lambda: storage.delete(stored_file))
    return job


# Uploaded files whose columns nobody chose are deleted after this long.
UNSTARTED_KEPT = timedelta(days=7)


def sweep_imports() -> int:
    """Celery beat, per merchant: hand a worker again the imports whose hand-over was lost (a
    broker down at the moment) or whose worker died, and let go of files uploaded but never
    started. The number of jobs seen to."""
    from tickets import tasks

    now = timezone.now()
    seen = 0
    unstarted = ImportJob.objects.filter(
        state=ImportJob.State.MAPPING, created_at__lt=now - UNSTARTED_KEPT
    )
    for job in unstarted:
        _finish(job, failure=_("Not started within 7 days: upload the file again to import it."))
        seen += 1
    stalled = ImportJob.objects.filter(
        state__in=[ImportJob.State.QUEUED, ImportJob.State.RUNNING],
        updated_at__lt=now - STALE_AFTER,
    )
    for job_id, tenant_id in stalled.values_list("pk", "tenant_id"):
        tasks.run_import.delay(tenant_id, job_id)
        seen += 1
    return seen


# --- reading the outcome -----------------------------------------------------------------------


def progress(job: ImportJob) -> dict[str, Any]:
    """What the page's progress bar shows, as JSON."""
    return {
        "state": job.state,
        "state_label": str(job.get_state_display()),
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "percent": job.percent,
        "created": job.created_count,
        "updated": job.updated_count,
        "unchanged": job.unchanged_count,
        "failed": job.failed_count,
        "finished": job.is_finished,
        "failure": job.failure,
    }


def _inert(cell: Any) -> Any:
    """A cell a spreadsheet shows as text: one starting like a formula (a customer's name
    "=HYPERLINK(...)") is quoted, so opening the report runs nothing."""
    if isinstance(cell, str) and cell[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + cell
    return cell


def error_report(job: ImportJob) -> Iterator[str]:
    """The rows that were not imported as CSV lines (UTF-8 with a BOM, so Excel reads the
    Chinese right): line, column, problem, the start of the row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_inert(cell) for cell in cells])
        return buffer.getvalue()

    yield "\ufeff" + line([_("Line"), _("Column"), _("Problem"), _("Row")])
    errors = ImportRowError.objects.filter(job=job).order_by("line", "pk")
    for error in errors.values_list("line", "column", "message", "raw").iterator(chunk_size=2000):
        yield line(list(error))
