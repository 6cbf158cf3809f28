"""Staff attach the radiologist's report, a PDF, to a study from the
dashboard: the service wraps it as an Encapsulated PDF instance of that
study and stores it in Orthanc, so that it travels with the study (a ZIP, a
transfer to another PACS) and every login that may see the study gets "Ver
informe (PDF)".

The new instance copies the patient and study tags from one of the study's
own files, byte for byte as pydicom reads them (PatientID, name, birth
date... exactly, or ingest would hold the study back as an identity
conflict), in a new series (Modality DOC). Orthanc files it under the same
study (its ID is a hash of PatientID and StudyInstanceUID): checked, and the
instance removed again if not. The study is then queued to be recorded again,
which lists the report for every login that sees the study, and the upload
is audited ("report_attached").

The PDF travels as base64 in JSON (the pages' writes are JSON: other sites'
forms cannot send it), so it must fit nginx's 1 MiB for the service's
bodies: REPORT_MAX_BYTES of PDF. It must start with the PDF signature.
"""

import base64
import binascii
import datetime
import io
import logging
import re

import pydicom
from flask import Blueprint, jsonify, request
from flask_babel import gettext
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from . import audit, ingest
from .errors import ApiError
from .models import Resource, Study
from .orthanc import OrthancError
from .staff import staff_or_error
from .ui import harden
from .web import json_body, services

log = logging.getLogger(__name__)

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
# 700 kB of PDF: about 934 kB as base64, under nginx's 1 MiB with the JSON around it.
REPORT_MAX_BYTES = 700 * 1000
# The body limit of the upload's route (limits.BodyGuard): the base64 and a title.
UPLOAD_BODY_BYTES = REPORT_MAX_BYTES * 4 // 3 + 4096
UPLOAD_PATH = re.compile(r"/staff/api/studies/[0-9a-f-]{44}/report")

# The patient's and the study's tags (and those rules match at series level),
# copied from the study's own file.
COPIED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "InstitutionName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
)


class BadReport(ValueError):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def pdf_bytes(text):
    """The PDF of the request's base64 text, checked; BadReport otherwise."""
    if not isinstance(text, str) or not text:
        raise BadReport("not_a_pdf")
    if len(text) > UPLOAD_BODY_BYTES:
        raise BadReport("too_large")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadReport("not_a_pdf") from None
    if len(data) > REPORT_MAX_BYTES:
        raise BadReport("too_large")
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
        raise BadReport("not_a_pdf")
    return data


def report_dataset(source, pdf, title, now=None):
    """An Encapsulated PDF instance of `source`'s study (a pydicom dataset)."""
    now = now or datetime.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in COPIED:
        if keyword in source:
            ds[keyword] = source[keyword]
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesNumber = 990
    ds.InstanceNumber = 1
    ds.SeriesDescription = title
    ds.DocumentTitle = title
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.ConceptNameCodeSequence = []
    ds.ContentDate = ds.SeriesDate = now.strftime("%Y%m%d")
    ds.ContentTime = ds.SeriesTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def attach(orthanc, study, pdf, title):
    """Store the PDF as an instance of `study` in Orthanc; returns its
    Orthanc ID. OrthancError when Orthanc cannot read or store."""
    source_id = (
        Resource.select(Resource.orthanc_id)
        .where((Resource.study == study) & (Resource.level == "instance"))
        .order_by(Resource.id)
        .first()
    )
    if source_id is None:
        raise OrthancError("the study has no recorded instance")
    source = pydicom.dcmread(
        io.BytesIO(orthanc.get_bytes(f"/instances/{source_id.orthanc_id}/file")),
        stop_before_pixels=True,
    )
    out = io.BytesIO()
    report_dataset(source, pdf, title).save_as(out, enforce_file_format=True)
    stored = orthanc.post_bytes("/instances", out.getvalue())
    if stored.get("ParentStudy") != study.orthanc_id:
        # Never leave a document in another study (or patient) than asked.
        orthanc.delete(f"/instances/{stored.get('ID')}")
        raise OrthancError(f"Orthanc filed the report under study {stored.get('ParentStudy')}")
    return stored["ID"]


# -- the dashboard's route ---------------------------------------------------

bp = Blueprint("attach", __name__)
bp.after_request(harden)


def _refusal(code):
    if code == "too_large":
        return ApiError(
            413, code, gettext("The PDF is larger than %(n)s kB.", n=REPORT_MAX_BYTES // 1000)
        )
    return ApiError(400, code, gettext("This file is not a PDF."))


@bp.post("/staff/api/studies/<orthanc_id>/report")
def attach_report(orthanc_id):
    """Staff: {"pdf": base64, "title": optional}. 201 {"instance"}."""
    principal = staff_or_error()
    body = json_body()
    study = Study.get_or_none(Study.orthanc_id == orthanc_id)
    if study is None:
        raise ApiError(
            404, "no_such_study", gettext("This study does not exist, or it is not one of yours.")
        )
    try:
        pdf = pdf_bytes(body.get("pdf"))
    except BadReport as exc:
        raise _refusal(exc.code) from exc
    title = body.get("title")
    title = title.strip()[:64] if isinstance(title, str) and title.strip() else gettext("Report")
    try:
        instance = attach(services().orthanc, study, pdf, title)
    except OrthancError as exc:
        log.warning("could not attach a report to study %s: %s", orthanc_id, exc)
        raise ApiError(
            503,
            "orthanc_unavailable",
            gettext("The report could not be stored. Try again in a moment."),
        ) from exc
    # Recorded again at once, not when Orthanc next says the study is stable.
    ingest.enqueue(study.orthanc_id)
    audit.record(
        "report_attached",
        actor=principal.audit_name,
        subject=study.orthanc_id,
        address=request.remote_addr,
        detail=f"instance {instance}, {len(pdf)} bytes, patient {study.patient.patient_id}",
    )
    return jsonify(instance=instance), 201
