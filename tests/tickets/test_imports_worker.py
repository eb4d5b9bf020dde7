"""An import on a real Celery worker over the Redis broker, and an import whose worker died
halfway resumed after its last chunk without importing a row twice."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from helpdesk import tenancy
from tests.channels_in.test_celery_worker import wait_for
from tests.conftest import login
from tests.factories import CustomerFactory
from tests.tickets.test_imports import csv_file, latest_job, mapping_form, upload
from tickets import imports
from tickets.models import Customer, ImportJob


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_the_file_after_the_admin_starts_it(
    real_worker, admin_zhao, tenant_acme
):
    admin = login(admin_zhao)
    text = "email,name\n" + "".join(f"p{i}@example.cn,Person {i}\n" for i in range(1200))
    assert upload(admin, "customers", csv_file(text)).status_code == 302
    job = latest_job(tenant_acme)
    response = admin.post(reverse("settings:import", args=[job.pk]), mapping_form(job))
    assert response.status_code == 302

    def done() -> bool:
        return admin.get(reverse("settings:import_progress", args=[job.pk])).json()["finished"]

    wait_for(done)
    progress = admin.get(reverse("settings:import_progress", args=[job.pk])).json()
    assert progress["state"] == "done"
    assert (progress["processed_rows"], progress["created"], progress["percent"]) == (
        1200,
        1200,
        100,
    )
    with tenancy.activate(tenant_acme):
        assert Customer.objects.count() == 1200


@pytest.mark.django_db
def test_an_import_whose_worker_died_resumes_after_its_last_chunk(
    admin_zhao, tenant_acme, monkeypatch
):
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    text = "email\n" + "".join(f"p{i}@example.cn\n" for i in range(5))
    with tenancy.activate(tenant_acme):
        # The first worker wrote two rows (one chunk) and died: its progress stopped long ago.
        CustomerFactory(email="p0@example.cn")
        CustomerFactory(email="p1@example.cn")
        job = ImportJob(
            kind="customers",
            original_name="c.csv",
            format="csv",
            encoding="utf-8",
            delimiter=",",
            headers=["email"],
            mapping={"email": 0},
            state=ImportJob.State.RUNNING,
            total_rows=5,
            processed_rows=2,
            created_count=2,
            created_by=admin_zhao,
        )
        job.file.save("c.csv", ContentFile(text.encode()), save=False)
        job.save()
        ImportJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))

        resumed = imports.run_import(job_id=job.pk)

        assert resumed is not None and resumed.state == ImportJob.State.DONE
        assert (resumed.processed_rows, resumed.created_count) == (5, 5)
        # Rows 2 and 3 of the file (the first chunk) were not read again.
        emails = sorted(Customer.objects.values_list("identities__value", flat=True))
        assert emails == [f"p{i}@example.cn" for i in range(5)]
        assert not resumed.file  # the uploaded file is gone once its rows are in


@pytest.mark.django_db
def test_a_job_another_worker_is_running_is_left_alone(tenant_acme):
    with tenancy.activate(tenant_acme):
        job = ImportJob.objects.create(
            kind="customers", original_name="c.csv", format="csv", state=ImportJob.State.RUNNING
        )
        assert imports.run_import(job_id=job.pk) is None
        job.refresh_from_db()
        assert job.state == ImportJob.State.RUNNING


@pytest.mark.django_db
def test_the_sweep_restarts_a_lost_import_and_lets_go_of_unstarted_files(
    tenant_acme, django_capture_on_commit_callbacks
):
    from tickets import tasks

    long_ago = timezone.now() - timedelta(days=8)
    with tenancy.activate(tenant_acme):
        lost = ImportJob(
            kind="customers",
            original_name="lost.csv",
            format="csv",
            encoding="utf-8",
            delimiter=",",
            headers=["email"],
            mapping={"email": 0},
            state=ImportJob.State.QUEUED,  # the broker was down when it was handed over
        )
        lost.file.save("lost.csv", ContentFile(b"email\nli@example.cn\n"), save=False)
        lost.save()
        unstarted = ImportJob(kind="orders", original_name="o.csv", format="csv")
        unstarted.file.save("o.csv", ContentFile(b"number\n1\n"), save=False)
        unstarted.state = ImportJob.State.MAPPING
        unstarted.save()
        stored_file = unstarted.file.path
        ImportJob.objects.update(created_at=long_ago, updated_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_imports() == 2  # eager here: the lost import runs at once

    with tenancy.activate(tenant_acme):
        lost.refresh_from_db()
        unstarted.refresh_from_db()
        assert (lost.state, lost.created_count) == (ImportJob.State.DONE, 1)
        assert unstarted.state == ImportJob.State.FAILED
        assert "Not started within 7 days" in unstarted.failure
    assert not os.path.exists(stored_file)
