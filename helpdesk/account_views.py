"""The account pages of the settings area: the merchant's profile and logo (admins and owners),
its data exports and its deletion (owners). Thin: the rules live in helpdesk.account,
helpdesk.exports and helpdesk.deletion."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from helpdesk import account, deletion, exports
from helpdesk.account_forms import AccountForm, DeletionRequestForm, LogoForm
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.models import Tenant
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.audit import weekly_hours_words
from tickets.views import tenant_required

LOGO_CACHE_SECONDS = 3600


def _group_hours() -> list[dict[str, object]]:
    """Each group's hours in words: the hours live on the groups (tickets.groups)."""
    from tickets.models import Group

    return [
        {
            "group": group,
            "words": _("Open around the clock")
            if group.always_open
            else weekly_hours_words(group.weekly_hours),
        }
        for group in Group.objects.order_by("name")
    ]


def _render_account(
    request: HttpRequest,
    acting: ActingAgent,
    form: AccountForm,
    logo_form: LogoForm,
    status: int = 200,
) -> HttpResponse:
    return render_settings(
        request,
        acting,
        "settings/account.html",
        {
            "form": form,
            "logo_form": logo_form,
            "group_hours": _group_hours(),
            "may_edit_hours": acting.can(Capability.MANAGE_GROUPS),
            "is_owner": acting.can(Capability.MANAGE_MERCHANT),
        },
        section="settings:account",
        status=status,
    )


@tenant_required
def account_settings(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, account.PROFILE_CAPABILITY)
    if request.method == "POST":
        form = AccountForm(request.POST)
        if form.is_valid():
            try:
                account.change_account_settings(acting_agent=acting, wanted=form.wanted())
            except HelpdeskError as exc:
                form_error(form, exc)
            else:
                messages.success(request, _("The account settings are saved."))
                return redirect("settings:account")
        return _render_account(request, acting, form, LogoForm(), status=400)
    form = AccountForm(initial=AccountForm.initial_of(request.tenant))
    return _render_account(request, acting, form, LogoForm())


@require_POST
@tenant_required
def account_logo(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, account.PROFILE_CAPABILITY)
    logo_form = LogoForm(request.POST, request.FILES)
    remove = request.POST.get("remove") == "1"
    if logo_form.is_valid() and (remove or logo_form.cleaned_data["logo"]):
        upload = logo_form.cleaned_data["logo"]
        try:
            if remove:
                account.set_logo(acting_agent=acting, content=None)
            else:
                account.check_logo_size(upload.size)  # before it is read into memory
                account.set_logo(acting_agent=acting, content=upload.read())
        except HelpdeskError as exc:
            form_error(logo_form, exc)
        else:
            messages.success(
                request, _("The logo is removed.") if remove else _("The logo is saved.")
            )
            return redirect("settings:account")
    elif logo_form.is_valid():
        logo_form.add_error("logo", _("Choose an image file."))
    form = AccountForm(initial=AccountForm.initial_of(request.tenant))
    return _render_account(request, acting, form, logo_form, status=400)


@require_GET
def logo_file(request: HttpRequest, slug: str) -> HttpResponse:
    """A merchant's logo. Public by intent: it is what customers see of the merchant (the
    address names the merchant, never a file), so it may appear on customer-facing pages."""
    tenant = Tenant.objects.filter(slug=slug, is_active=True).only("logo").first()
    if tenant is None or not tenant.logo:
        raise Http404("No logo")
    extension = tenant.logo.name.rpartition(".")[2]
    content_type = account.LOGO_CONTENT_TYPES.get(extension)
    if content_type is None:
        raise Http404("No logo")
    try:
        stored = tenant.logo.open("rb")
    except FileNotFoundError:
        raise Http404("The logo is missing from storage") from None
    response = FileResponse(stored, content_type=content_type)
    response["Content-Security-Policy"] = "default-src 'none'"
    response["Cache-Control"] = f"public, max-age={LOGO_CACHE_SECONDS}"
    return response


# --- data export ------------------------------------------------------------------------------


@tenant_required
def export_list(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MERCHANT)
    if request.method == "POST":
        exports.request_export(acting_agent=acting)
        messages.success(
            request,
            _("The export is being written. You will get an email when it is ready."),
        )
        return redirect("settings:exports")
    now = timezone.now()
    rows = [
        {"export": export, "downloadable": export.is_downloadable(now)}
        for export in exports.exports_of(acting_agent=acting)
    ]
    return render_settings(
        request,
        acting,
        "settings/exports.html",
        {"rows": rows, "format_version": exports.FORMAT_VERSION},
        section="settings:exports",
    )


@require_GET
@tenant_required
def export_download(request: HttpRequest, pk: int) -> FileResponse:
    acting = acting_with(request, Capability.MANAGE_MERCHANT)
    stored, filename = exports.open_export_for_download(acting_agent=acting, export_id=pk)
    response = FileResponse(
        stored, as_attachment=True, filename=filename, content_type="application/zip"
    )
    response["Cache-Control"] = "private, no-store"
    return response


# --- deletion ---------------------------------------------------------------------------------


@tenant_required
def deletion_page(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MERCHANT)
    form = DeletionRequestForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                deletion.request_deletion(
                    acting_agent=acting,
                    password=form.cleaned_data["password"],
                    slug=form.cleaned_data["slug"],
                )
            except BadInput as exc:  # already scheduled (409) is not the form's to show
                form_error(form, exc)
            else:
                messages.warning(
                    request,
                    _("%(merchant)s will be deleted on %(date)s. You can cancel until then.")
                    % {
                        "merchant": request.tenant.name,
                        "date": timezone.localtime(request.tenant.deletion_due_at).strftime(
                            "%Y-%m-%d"
                        ),
                    },
                )
                return redirect("settings:deletion")
        status = 400
    return render_settings(
        request,
        acting,
        "settings/deletion.html",
        {"form": form, "grace_days": settings.HELPDESK_TENANT_DELETION_DAYS},
        section="settings:deletion",
        status=status,
    )


@require_POST
@tenant_required
def deletion_cancel(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MERCHANT)
    deletion.cancel_deletion(acting_agent=acting)
    messages.success(
        request,
        _("The deletion is cancelled: %(merchant)s stays.") % {"merchant": request.tenant.name},
    )
    return redirect("settings:deletion")
