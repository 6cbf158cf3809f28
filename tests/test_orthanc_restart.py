"""A study whose last instance arrived just before Orthanc
was killed never gets its StableStudy event (Orthanc keeps stability in
memory). Its login must still be listed within 60 s of Orthanc answering
again, however briefly Orthanc was away: here `make run` starts Orthanc again
within about a second, and the service polls every 30 s, so it need not see
Orthanc down at all (RECONCILE_SECONDS stays 600)."""

import os
import signal
import time
import uuid

import pytest

from tests.dicom_samples import SeriesSpec, StudySpec, storescu, write_study
from tests.helpers import ADMIN_PASSWORD, Browser, wait_for
from tests.launcher import Launcher, children

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    # StableAge 5 s: time to kill Orthanc before the study is stable.
    run = Launcher(
        tmp_path_factory.mktemp("restart") / "data",
        stable_age_seconds=5,
        authsvc={"CHANGES_POLL_SECONDS": 30},
    )
    yield run
    run.stop()


def listed_with_login(admin, study_uid):
    rows = admin.get("/api/studies", params={"limit": 1000}).json()["studies"]
    return next(
        (r for r in rows if r["study_instance_uid"] == study_uid and r["patient_has_login"]), None
    )


@pytest.mark.parametrize("round_", [1, 2])
def test_login_listed_within_60s_of_orthanc_answering_after_sigkill(launcher, tmp_path, round_):
    admin = Browser(f"http://127.0.0.1:{launcher.site['http_port']}")
    assert admin.login(username="admin", password=ADMIN_PASSWORD).status_code == 200
    written = write_study(
        StudySpec(
            f"RS-{uuid.uuid4().hex[:6]}", "REINICIO^ORTHANC", series=[SeriesSpec("CT", 2, {})]
        ),
        tmp_path,
    )
    sent = storescu(written.files, launcher.site["dicom_port"])
    assert sent.returncode == 0, sent.stderr
    orthanc = children(launcher.proc.pid)["orthanc"]
    os.kill(orthanc, signal.SIGKILL)  # right after the last instance, before StableAge
    wait_for(
        lambda: children(launcher.proc.pid).get("orthanc") not in (None, orthanc)
        and launcher.answers("orthanc"),
        30,
        interval=0.05,
        what="Orthanc back",
    )
    back = time.monotonic()
    row = wait_for(
        lambda: listed_with_login(admin, written.study_uid),
        60,
        interval=0.5,
        what="the study's login listed after Orthanc's restart",
    )
    print(f"login listed {time.monotonic() - back:.1f} s after Orthanc answered again")
    assert row["patient_id"] == written.spec.patient_id
