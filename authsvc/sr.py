"""A DICOM Structured Report as readable text: the document's title, its
state, and its content tree (headings, texts, codes, measurements, dates,
names) as indented lines, for the patient and whoever may see the study.

The file is read from Orthanc and parsed with pydicom here (Orthanc's JSON
of an instance leaves out values longer than 256 characters, and a report's
paragraph is often longer). The lines are plain text: the page escapes them,
so nothing in a report can become markup. References to images, coordinates
and waveforms are left out: they mean nothing without the viewer.
"""

import io

import pydicom
from flask_babel import gettext

from .i18n import person_name, study_date

# Bounds, so that no file can make a page of millions of lines or recurse
# without end.
MAX_DEPTH = 12
MAX_LINES = 2000
MAX_BYTES = 20 * 1024 * 1024

SKIPPED = {"IMAGE", "COMPOSITE", "WAVEFORM", "SCOORD", "SCOORD3D", "TCOORD"}


def _first(ds, keyword):
    seq = getattr(ds, keyword, None)
    return seq[0] if seq else None


def _meaning(ds, keyword):
    code = _first(ds, keyword)
    return str(getattr(code, "CodeMeaning", "") or "").strip() if code is not None else ""


def _number(item):
    measured = _first(item, "MeasuredValueSequence")
    if measured is None:
        return ""
    units = _first(measured, "MeasurementUnitsCodeSequence")
    unit = ""
    if units is not None:
        # UCUM's codes are what people read ("mm", "cm2"); "1" means no unit.
        unit = (
            str(units.CodeValue)
            if getattr(units, "CodingSchemeDesignator", "") == "UCUM"
            and getattr(units, "CodeValue", "")
            else str(getattr(units, "CodeMeaning", ""))
        )
    value = str(getattr(measured, "NumericValue", "")).strip()
    return f"{value} {unit}".strip() if unit not in ("", "1", "no units") else value


def _value(item):
    kind = str(getattr(item, "ValueType", "")).upper()
    if kind == "TEXT":
        return str(getattr(item, "TextValue", ""))
    if kind == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if kind == "NUM":
        return _number(item)
    if kind == "DATE":
        return study_date(str(getattr(item, "Date", "")))
    if kind == "TIME":
        return str(getattr(item, "Time", ""))
    if kind == "DATETIME":
        return str(getattr(item, "DateTime", ""))
    if kind == "PNAME":
        return person_name(str(getattr(item, "PersonName", "")))
    if kind == "UIDREF":
        return str(getattr(item, "UID", ""))
    return ""


def _walk(items, depth, lines):
    for item in items or []:
        if len(lines) >= MAX_LINES:
            return
        kind = str(getattr(item, "ValueType", "")).upper()
        if kind in SKIPPED:
            continue
        name = _meaning(item, "ConceptNameCodeSequence")
        if kind == "CONTAINER":
            if name:
                lines.append({"depth": depth, "heading": True, "text": name})
        else:
            value = _value(item).strip()
            if value or name:
                lines.append(
                    {
                        "depth": depth,
                        "heading": False,
                        "text": f"{name}: {value}" if name and value else (value or name),
                    }
                )
        if depth < MAX_DEPTH:
            _walk(getattr(item, "ContentSequence", None), depth + 1, lines)


def document(data):
    """{"title", "date", "state", "lines": [{"depth", "heading", "text"}]}
    of an SR file's bytes; ValueError when it is not one."""
    if len(data) > MAX_BYTES:
        raise ValueError("too large for a report")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on a bad file
        raise ValueError(f"not a DICOM file: {exc}") from exc
    if "ContentSequence" not in ds:
        raise ValueError("no content tree")
    lines = []
    _walk(ds.ContentSequence, 0, lines)
    state = ""
    if str(getattr(ds, "VerificationFlag", "")).upper() == "VERIFIED":
        state = gettext("Verified report")
    elif str(getattr(ds, "CompletionFlag", "")).upper() == "PARTIAL":
        state = gettext("Preliminary report: not complete yet")
    else:
        state = gettext("Report not verified yet")
    return {
        "title": _meaning(ds, "ConceptNameCodeSequence") or gettext("Report"),
        "date": study_date(str(getattr(ds, "ContentDate", ""))),
        "state": state,
        "lines": lines,
    }
