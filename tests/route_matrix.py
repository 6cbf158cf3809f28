"""The route matrix: every principal, the same method x route x query cases.

One table for the in-process decision (tests/test_decision_matrix.py: the
decision function through each adapter's translation) and the real stack
(tests/test_confinement.py: through nginx, straight at Orthanc's Lua filter,
and through the docker deployment's nginx). Placeholders name the world both
build: patient A's studies A1 (whose StudyInstanceUID `shared_uid` patient
B's study B has too) and A2; a rule login and a share that see A1 only.
"""

import pytest

# (method, route, principals granted); every other principal gets 403.
# Granted means that every lock lets it through: through the real stack,
# Orthanc's own answer (200, or a 4xx where the route does not exist in this
# Orthanc version or the body does not fit), never 403.
EVERYONE = ("patient", "share", "rule", "radiologist", "admin")
STAFF = ("radiologist", "admin")
MATRIX = [
    ("GET", "/studies/{A1[study]}", EVERYONE),
    ("GET", "/studies/{A1[study]}/series", EVERYONE),
    ("GET", "/series/{A1[series]}/study", EVERYONE),
    ("GET", "/instances/{A1[instance]}/preview", EVERYONE),
    ("GET", "/instances/{A1[instance]}/rendered?window-center=40&window-width=400", EVERYONE),
    ("GET", "/web-viewer/series/{A1[series]}", EVERYONE),
    ("GET", "/web-viewer/instances/jpeg95-{A1[instance]}_0", EVERYONE),
    ("GET", "/studies/{A2[study]}", ("patient",) + STAFF),
    ("GET", "/studies/{B[study]}", ("other",) + STAFF),
    ("GET", "/instances/{B[instance]}/file", ("other",) + STAFF),
    ("GET", "/studies/{A1[study]}/patient", ("patient",) + STAFF),
    ("GET", "/series/{A1[series]}/patient", ("patient",) + STAFF),
    ("GET", "/instances/{A1[instance]}/patient", ("patient",) + STAFF),
    ("GET", "/patients/{A1[patient]}", ("patient",) + STAFF),
    ("GET", "/patients/{A1[patient]}/archive", ("patient",) + STAFF),
    ("GET", "/patients/{B[patient]}", ("other",) + STAFF),
    ("GET", "/dicom-web/studies/{A2[study_uid]}/metadata", ("patient",) + STAFF),
    ("GET", "/dicom-web/studies/{shared_uid}/series", STAFF),
    ("GET", "/dicom-web/studies/{shared_uid}/instances", STAFF),
    ("GET", "/dicom-web/studies?StudyInstanceUID={A2[study_uid]}", ("patient",) + STAFF),
    ("GET", "/dicom-web/studies?StudyInstanceUID={B[study_uid]}", STAFF),
    ("GET", "/dicom-web/studies?PatientID={A1[pid]}", ("patient",) + STAFF),
    ("GET", "/dicom-web/studies", STAFF),
    ("GET", "/dicom-web/series?StudyInstanceUID={A2[study_uid]}", ("patient",) + STAFF),
    ("GET", "/dicom-web/instances?0020000D={A2[study_uid]}&StudyInstanceUID={B[study_uid]}", STAFF),
    ("GET", "/dicom-web/studies/{A2[study_uid]}/series?StudyInstanceUID={B[study_uid]}", STAFF),
    ("GET", "/tools/create-archive?resources={A1[study]},{B[patient]}", STAFF),
    ("GET", "/tools/create-archive?resources={A1[study]}&resources={B[study]}", STAFF),
    ("GET", "/patients", STAFF),
    ("GET", "/studies", STAFF),
    ("GET", "/changes", STAFF),
    ("GET", "/system", STAFF),
    ("GET", "/app/explorer.html", STAFF),
    ("POST", "/tools/lookup", STAFF),
    ("POST", "/tools/find", STAFF),
    ("POST", "/tools/create-archive", ("admin",)),
    ("DELETE", "/studies/{B[study]}/labels/x", ("admin",)),
    ("PUT", "/studies/{A1[study]}/metadata/1024", ("admin",)),
]
PRINCIPALS = ("patient", "other", "share", "rule", "radiologist", "admin", "none")


def matrix_cases():
    for method, route, granted in MATRIX:
        for who in PRINCIPALS:
            yield pytest.param(method, route, who in granted, who, id=f"{who} {method} {route}")
