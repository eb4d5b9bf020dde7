"""The forms of the import pages (tickets.import_views): the upload, and the column mapping."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tickets.import_fields import fields_for, mapping_problem
from tickets.models import ImportJob


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("The file holds"),
        choices=ImportJob.Kind.choices,
        initial=ImportJob.Kind.ORDERS,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=gettext_lazy("CSV or Excel (.xlsx) file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # imports.js refuses a file over the limit before it is sent.
        self.fields["file"].widget.attrs["data-max-bytes"] = settings.HELPDESK_IMPORT_MAX_BYTES


SKIP = ""


class ImportMappingForm(forms.Form):
    """One choice per column of the file: the field it holds, or nothing."""

    def __init__(self, *args: Any, job: ImportJob, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        fields = fields_for(job.kind)
        choices = [(SKIP, _("— Do not import —"))] + [
            (field.key, f"{field.label} *" if field.required else str(field.label))
            for field in fields
        ]
        column_of = {column: key for key, column in job.mapping.items()}
        for column, header in enumerate(job.headers):
            self.fields[f"column_{column}"] = forms.ChoiceField(
                label=header, choices=choices, required=False, initial=column_of.get(column, SKIP)
            )

    def columns(self) -> list[tuple[int, forms.BoundField]]:
        return [(column, self[f"column_{column}"]) for column in range(len(self.job.headers))]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        mapping: dict[str, int] = {}
        for column in range(len(self.job.headers)):
            key = cleaned.get(f"column_{column}") or SKIP
            if key == SKIP:
                continue
            if key in mapping:
                label = dict(self.fields[f"column_{column}"].choices)[key]
                self.add_error(
                    f"column_{column}",
                    _("%(field)s is already the column %(header)s")
                    % {"field": label, "header": self.job.headers[mapping[key]]},
                )
                continue
            mapping[key] = column
        problem = mapping_problem(self.job.kind, mapping)
        if problem:
            raise forms.ValidationError(problem)
        cleaned["mapping"] = mapping
        return cleaned
