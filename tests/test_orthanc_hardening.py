"""The shipped Orthanc configuration, proven on the running Orthanc: only
known modalities from their own host may store, nobody queries or retrieves
unless allowed, WebDAV and Lua over REST are off, and Orthanc's HTTP port
answers nobody but nginx's and the service's users."""

import os
import stat
import subprocess

import pytest
import requests
from pydicom.data import get_testdata_file

from tests.dicom_samples import storescu

pytestmark = pytest.mark.stack

CT = get_testdata_file("CT_small.dcm")


def dcmtk(tool, *args, calling):
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(
        [tool, "-aet", calling, "-aec", "ORTHANC", *args],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )


def test_known_modality_stores(stack):
    assert storescu([CT], stack.site["dicom_port"]).returncode == 0


@pytest.mark.parametrize("calling", ["EVIL", "SPOOFED"])
def test_unknown_or_spoofed_ae_cannot_store(stack, calling):
    # SPOOFED is known, but configured on 127.0.0.2: from 127.0.0.1 it is a spoof.
    result = storescu([CT], stack.site["dicom_port"], calling=calling)
    assert result.returncode != 0
    assert "Rejected" in result.stderr or "rejected" in result.stderr.lower()


@pytest.mark.parametrize("calling", ["EVIL", "SPOOFED"])
def test_unknown_or_spoofed_ae_cannot_echo(stack, calling):
    assert (
        dcmtk("echoscu", "127.0.0.1", str(stack.site["dicom_port"]), calling=calling).returncode
        != 0
    )


def test_wrong_called_ae_title_is_refused(stack):
    env = dict(os.environ, TCP_NODELAY="1")
    result = subprocess.run(
        [
            "storescu",
            "-aet",
            "STORESCU",
            "-aec",
            "NOTORTHANC",
            "127.0.0.1",
            str(stack.site["dicom_port"]),
            CT,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


FIND = ["-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName", "-k", "StudyInstanceUID"]


@pytest.mark.parametrize("calling", ["STORESCU", "EVIL", "SPOOFED"])
def test_no_query_or_retrieve_unless_allowed(stack, calling):
    port = str(stack.site["dicom_port"])
    storescu([CT], stack.site["dicom_port"])  # something to find
    find = dcmtk("findscu", "-v", *FIND, "127.0.0.1", port, calling=calling)
    said = find.stdout + find.stderr
    # findscu exits 0 even when Orthanc aborts the association: read what it said.
    assert find.returncode != 0 or "Aborted" in said or "Rejected" in said, said
    assert "CompressedSamples" not in said
    get = dcmtk(
        "getscu",
        "-S",
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientID=1CT1",
        "-od",
        "/tmp",
        "127.0.0.1",
        port,
        calling=calling,
    )
    assert (
        get.returncode != 0
        or "Completed Subops: 0" in get.stdout + get.stderr
        or "Sub-Operations Complete: 0" in get.stdout + get.stderr
    )


def test_allow_query_opens_c_find_for_that_modality_only(stack):
    storescu([CT], stack.site["dicom_port"])
    find = dcmtk(
        "findscu", "-v", *FIND, "127.0.0.1", str(stack.site["dicom_port"]), calling="QUERIER"
    )
    assert find.returncode == 0
    assert "CompressedSamples" in find.stdout + find.stderr


@pytest.mark.parametrize(
    "method,path",
    [
        ("PROPFIND", "/webdav/"),
        ("GET", "/webdav/"),
        ("POST", "/tools/execute-script"),
    ],
)
def test_webdav_and_lua_over_rest_are_off_even_for_admins(admin, method, path):
    r = admin.request(method, "/orthanc" + path, data="print(1)")
    assert r.status_code in (403, 404, 405), (method, path, r.status_code)
    assert r.status_code != 200


def test_orthanc_port_answers_only_known_users(stack):
    url = stack.orthanc_url + "/system"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("orthanc", "orthanc"), timeout=5).status_code == 401
    assert requests.get(url, auth=("authsvc", "wrong"), timeout=5).status_code == 401
    # nginx's own user without a session: the filter refuses.
    proxy = ("nginx", stack.secrets["proxy_password"])
    assert requests.get(url, auth=proxy, timeout=5).status_code == 403
    assert (
        requests.get(
            url, auth=("authsvc", stack.secrets["orthanc_password"]), timeout=5
        ).status_code
        == 200
    )


def test_generated_files_holding_secrets_are_private(stack):
    for path in ["secrets.json", "authsvc.json", "orthanc/config/local.json", "nginx/nginx.conf"]:
        mode = stat.S_IMODE(os.stat(stack.data_dir / path).st_mode)
        assert mode == 0o600, (path, oct(mode))
