"""A CT series made from pydicom's bundled CT_small.dcm (128x128, 16 bits),
rewritten N times with new SOP Instance UIDs: one study, one series, one
patient, slices 1 mm apart. Sent with dcmtk's storescu, Nagle off."""

import io
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

STORESCU_AET = "STORESCU"  # the modality the default site.json allows


@dataclass
class CtSeries:
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uids: list
    files: list


def write_ct(folder, patient_id, slices):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    study_uid, series_uid = generate_uid(), generate_uid()
    sop_uids, files = [], []
    for i in range(slices):
        ds = pydicom.dcmread(io.BytesIO(raw))
        ds.PatientID = patient_id
        ds.PatientName = f"BENCH^{patient_id}"
        ds.PatientBirthDate = "19800101"
        ds.StudyInstanceUID = study_uid
        ds.StudyDescription = "BENCH CT"
        ds.StudyDate = "20261128"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.InstanceNumber = i + 1
        x, y, _ = ds.ImagePositionPatient
        ds.ImagePositionPatient = [x, y, -75.0 + i]
        ds.SliceLocation = -75.0 + i
        sop_uid = generate_uid()
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        path = folder / f"{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        sop_uids.append(sop_uid)
        files.append(path)
    return CtSeries(patient_id, study_uid, series_uid, sop_uids, files)


def storescu(files, port, aet="ORTHANC"):
    """Send files in one association; returns the seconds it took."""
    env = dict(os.environ, TCP_NODELAY="1")
    start = time.perf_counter()
    result = subprocess.run(
        ["storescu", "-aet", STORESCU_AET, "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"storescu failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed
