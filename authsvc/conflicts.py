"""Studies in conflict with a login's DICOM identity (placeholder until the
ingest side lands in this session)."""


def orthanc_patient_in_conflict(patient_orthanc_id):
    return False
