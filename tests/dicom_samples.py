"""Real DICOM for the tests: pydicom's bundled CT and MR files, rewritten with
pydicom into the patients, studies and series each test needs; sending them
to the stack's Orthanc, and what the service then recorded of them (or the
identity conflict it found)."""

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SOURCES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
STORESCU_AET = "STORESCU"


@dataclass
class SeriesSpec:
    modality: str = "CT"
    instances: int = 2
    tags: dict = field(default_factory=dict)  # keyword -> value, per series


@dataclass
class StudySpec:
    patient_id: str
    patient_name: str
    series: list
    charset: str = "ISO_IR 192"
    description: str = "TORAX"
    study_date: str = "20261128"
    tags: dict = field(default_factory=dict)  # keyword -> value, study level


@dataclass
class WrittenStudy:
    spec: StudySpec
    study_uid: str
    series_uids: list
    sop_uids: list
    files: list


def write_study(spec, folder):
    """Write one study's files under `folder`; returns their UIDs and paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    series_uids, sop_uids, files = [], [], []
    for s_index, series in enumerate(spec.series):
        series_uid = generate_uid()
        series_uids.append(series_uid)
        for i in range(series.instances):
            if series.modality == "DOC":
                ds = report_dataset(f"Informe {i + 1}")
            elif series.modality == "SR":
                ds = text_report_dataset(SR_FINDINGS)
            elif series.modality == "CT512":
                ds = ct_512(seed=s_index * 1000 + i)
            else:
                ds = pydicom.dcmread(get_testdata_file(SOURCES[series.modality]))
            ds.SpecificCharacterSet = spec.charset
            ds.PatientID = spec.patient_id
            ds.PatientName = spec.patient_name
            ds.PatientBirthDate = "19800101"
            ds.StudyInstanceUID = study_uid
            ds.StudyDescription = spec.description
            ds.StudyDate = spec.study_date
            ds.StudyID = "1"
            ds.AccessionNumber = ""
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = s_index + 1
            ds.Modality = "CT" if series.modality == "CT512" else series.modality
            ds.InstanceNumber = i + 1
            sop_uid = generate_uid()
            ds.SOPInstanceUID = sop_uid
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            for keyword, value in {**spec.tags, **series.tags}.items():
                setattr(ds, keyword, value)
            path = folder / f"{study_uid}-{s_index}-{i}.dcm"
            # pydicom encodes text in the dataset's SpecificCharacterSet.
            ds.save_as(path, enforce_file_format=True)
            sop_uids.append(sop_uid)
            files.append(path)
    return WrittenStudy(spec, study_uid, series_uids, sop_uids, files)


def ct_512(seed=0):
    """A 512x512 CT slice as scanners make them: a body of soft tissue (in HU)
    with lungs, a spine and vessels, and the scanner's noise (sigma 15 HU)
    over everything, air included. pydicom's CT with its pixels replaced."""
    import numpy

    ds = pydicom.dcmread(get_testdata_file(SOURCES["CT"]))
    rng = numpy.random.default_rng(seed)
    y, x = numpy.mgrid[0:512, 0:512]
    hu = numpy.full((512, 512), -1000.0)
    hu[((x - 256) / 220) ** 2 + ((y - 256) / 160) ** 2 < 1] = 40.0
    for cx in (170, 342):  # lungs
        hu[((x - cx) / 70) ** 2 + ((y - 240) / 100) ** 2 < 1] = -850.0
    hu[((x - 256) / 28) ** 2 + ((y - 360) / 28) ** 2 < 1] = 700.0  # spine
    hu[((x - 256) / 30) ** 2 + ((y - 250) / 30) ** 2 < 1] = 180.0  # aorta, contrast
    hu += 40 * numpy.sin(x / 23.0 + seed) * numpy.cos(y / 31.0)  # texture
    hu += rng.normal(0, 15, hu.shape)
    stored = numpy.clip(hu + 1024, 0, 4095).astype(numpy.uint16)
    ds.Rows, ds.Columns = 512, 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelSpacing = [0.7, 0.7]
    ds.PixelData = stored.tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.is_little_endian, ds.is_implicit_VR = True, False
    return ds


def minimal_pdf(text):
    """A small valid PDF (one page, one line of text), its xref offsets exact."""
    text = text.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 18 Tf 40 760 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def report_dataset(title):
    """An Encapsulated PDF instance (the radiologist's report), Modality DOC."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf = minimal_pdf(title)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.ConceptNameCodeSequence = []
    ds.ContentDate = "20261128"
    ds.ContentTime = "120000"
    ds.AcquisitionDateTime = "20261128120000"
    ds.PatientSex = "O"
    ds.StudyTime = "120000"
    ds.ReferringPhysicianName = ""
    return ds


BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
# (concept name, text) of a Basic Text SR's TEXT items, under one heading;
# the findings longer than Orthanc's 256-character JSON limit.
SR_FINDINGS = [
    (
        "Hallazgos",
        "Rodilla derecha: menisco interno con rotura horizontal del cuerno "
        "posterior. Ligamentos cruzados íntegros. " + "Sin derrame articular significativo. " * 6,
    ),
    ("Impresión", "Rotura meniscal interna. Correlacionar con la clínica."),
]


def _code(value, meaning, scheme="DCM"):
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def text_report_dataset(findings):
    """A Basic Text SR: a titled CONTAINER holding a heading CONTAINER with a
    TEXT item for each (concept name, text), as a radiologist's system sends."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("18748-4", "Informe de diagnóstico por imagen", "LN")]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    ds.ContentDate, ds.ContentTime = "20261128", "120000"
    ds.StudyTime, ds.ReferringPhysicianName, ds.PatientSex = "120000", "", "O"
    section = Dataset()
    section.RelationshipType, section.ValueType = "CONTAINS", "CONTAINER"
    section.ContinuityOfContent = "SEPARATE"
    section.ConceptNameCodeSequence = [_code("121070", "Hallazgos del estudio")]
    items = []
    for number, (name, text) in enumerate(findings):
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        item.ConceptNameCodeSequence = [_code(f"1210{71 + number}", name)]
        item.TextValue = text
        items.append(item)
    section.ContentSequence = items
    ds.ContentSequence = [section]
    return ds


def storescu(files, port, aet="ORTHANC", host="127.0.0.1", calling=STORESCU_AET):
    """Send files with dcmtk's storescu, Nagle off (else ~90 ms per instance)."""
    env = dict(os.environ, TCP_NODELAY="1")
    result = subprocess.run(
        ["storescu", "-aet", calling, "-aec", aet, host, str(port), *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result


def lookup(orthanc, uid):
    found = orthanc.post(orthanc.base + "/tools/lookup", data=uid).json()
    assert len(found) == 1, found
    return found[0]["ID"]


def send_recorded(stack, orthanc, admin, spec, folder):
    """Send a study with storescu, wait until the service has recorded it,
    and issue its patient's password: (written, Orthanc study ID, password)."""
    from tests.helpers import wait_for

    written = write_study(spec, folder)
    assert storescu(written.files, stack.site["dicom_port"]).returncode == 0
    study = lookup(orthanc, written.study_uid)
    wait_for(lambda: recorded(admin, study), 30, what="study recorded")
    password = admin.post(f"/api/patients/{spec.patient_id}/credentials", json={}).json()[
        "password"
    ]
    return written, study, password


def send_patient(stack, orthanc, tmp_path, patient_id, name, charset):
    spec = StudySpec(
        patient_id=patient_id,
        patient_name=name,
        charset=charset,
        series=[
            SeriesSpec("CT", 2, {"PerformingPhysicianName": "NÚÑEZ^JOSÉ"}),
            SeriesSpec("MR", 2, {"PerformingPhysicianName": "PEREZ^JUAN"}),
        ],
        tags={"ReferringPhysicianName": "GÓMEZ^MARÍA", "InstitutionName": "Hospital Universitario"},
    )
    written = write_study(spec, tmp_path / patient_id)
    result = storescu(written.files, stack.site["dicom_port"])
    assert result.returncode == 0, result.stderr
    study = lookup(orthanc, written.study_uid)
    series = [lookup(orthanc, uid) for uid in written.series_uids]
    instances = [lookup(orthanc, uid) for uid in written.sop_uids]
    patient = orthanc.get(f"{orthanc.base}/studies/{study}").json()["ParentPatient"]
    return {
        "pid": patient_id,
        "study": study,
        "series": series[0],
        "instance": instances[0],
        "patient": patient,
        "study_uid": written.study_uid,
        "series_uid": written.series_uids[0],
        "sop_uid": written.sop_uids[0],
        "all_series": series,
        "all_instances": instances,
    }


def raw_patient_id(raw, charset):
    """Write the PatientID's bytes as they are, under a SpecificCharacterSet
    Orthanc may not know (pydicom writes bytes values unchanged)."""

    def edit(ds):
        ds.SpecificCharacterSet = charset
        ds["PatientID"] = pydicom.DataElement(0x00100020, "LO", raw)

    return edit


def one_series(n=1):
    """A StudySpec's series: one CT series of `n` instances."""
    return [SeriesSpec("CT", n, {})]


def send(stack, orthanc, tmp_path, spec, extra=None):
    """Write a study (each file passed through `extra(ds)` first, if given),
    send it with storescu; its Orthanc study ID."""
    import uuid

    written = write_study(spec, tmp_path / uuid.uuid4().hex[:8])
    if extra:
        for path in written.files:
            ds = pydicom.dcmread(path)
            extra(ds)
            ds.save_as(path, enforce_file_format=True)
    result = storescu(written.files, stack.site["dicom_port"])
    assert result.returncode == 0, result.stderr
    return lookup(orthanc, written.study_uid)


def recorded(admin, orthanc_id):
    studies = admin.get("/api/studies", params={"limit": 1000}).json()["studies"]
    return next((s for s in studies if s["orthanc_id"] == orthanc_id), None)


def conflict_of(admin, study):
    """The ingest problem of `study` that is an identity conflict, or None."""
    for problem in admin.get("/api/ingest/problems").json()["problems"]:
        if problem["orthanc_id"] == study and problem.get("conflict"):
            return problem
    return None
