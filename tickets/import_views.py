"""Settings → Import: upload a customers or orders file, choose what each column holds, watch
the import's progress and read the rows that were not imported. Owners and admins only
(``IMPORT_DATA``); another merchant's import is 404."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from helpdesk.errors import BadInput
from helpdesk.permissions import Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets import imports
from tickets.import_fields import field_label, fields_for
from tickets.import_forms import ImportMappingForm, ImportUploadForm
from tickets.models import ImportJob
from tickets.views import tenant_required

SECTION = "settings:imports"
ERRORS_SHOWN = 100


@tenant_required
def import_list(request: HttpRequest) -> HttpResponse:
    """Past imports, newest first, and the form that uploads the next file."""
    acting = acting_with(request, Capability.IMPORT_DATA)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.upload_import(
                acting_agent=acting,
                kind=form.cleaned_data["kind"],
                upload=form.cleaned_data["file"],
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            return redirect("settings:import", pk=job.pk)
    return render_settings(
        request,
        acting,
        "settings/imports.html",
        {
            "form": form,
            "jobs": imports.recent_imports(acting),
            "max_mb": settings.HELPDESK_IMPORT_MAX_BYTES // (1024 * 1024),
        },
        section=SECTION,
        status=400 if form.is_bound else 200,
    )


@tenant_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An import: its columns to choose while it waits for them, then its progress and what
    it did."""
    acting = acting_with(request, Capability.IMPORT_DATA)
    job = imports.access_import_job(acting, pk)
    form = None
    status = 200
    if job.state == ImportJob.State.MAPPING:
        form = ImportMappingForm(request.POST or None, job=job)
        if request.method == "POST":
            if form.is_valid():
                try:
                    imports.start_import(
                        acting_agent=acting, job=job, mapping=form.cleaned_data["mapping"]
                    )
                except BadInput as exc:
                    form_error(form, exc)
                else:
                    messages.success(request, _("The import has started."))
                    return redirect("settings:import", pk=job.pk)
            status = 400
    elif request.method == "POST":
        return redirect("settings:import", pk=job.pk)
    errors = list(job.row_errors.order_by("line", "pk")[:ERRORS_SHOWN])
    return render_settings(
        request,
        acting,
        "settings/import.html",
        {
            "job": job,
            "form": form,
            "preview": imports.preview_rows(job) if form is not None else [],
            "required": [f.label for f in fields_for(job.kind) if f.required],
            "mapped": [
                (field_label(job.kind, key), job.headers[column])
                for key, column in sorted(job.mapping.items(), key=lambda item: item[1])
                if column < len(job.headers)
            ],
            "errors": errors,
            "more_errors": job.failed_count > len(errors),
        },
        section=SECTION,
        status=status,
    )


@require_GET
@tenant_required
def import_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """The import's progress for the page's bar (polled every second while it runs)."""
    acting = acting_with(request, Capability.IMPORT_DATA)
    job = imports.access_import_job(acting, pk)
    response = JsonResponse(imports.progress(job))
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@tenant_required
def import_errors(request: HttpRequest, pk: int) -> HttpResponse:
    """The rows that were not imported, as a CSV file to fix and upload again. Written while
    the merchant is active (a streamed body is read after the request's tenant is gone), and
    short enough to: at most MAX_STORED_ERRORS rows are kept."""
    acting = acting_with(request, Capability.IMPORT_DATA)
    job = imports.access_import_job(acting, pk)
    response = HttpResponse(
        "".join(imports.error_report(job)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
