"""How big a study's download is, for its "Download (ZIP, up to 3.4 MB)"
link: a patient on a prepaid plan should know before tapping.

Orthanc's /studies/{id}/statistics gives the size of the study's DICOM files
(UncompressedSize) and their number; the ZIP Orthanc builds holds those
files, compressed, plus a header and a directory entry for each (their
folder names included): at most ZIP_ENTRY_BYTES more per file. So the link
says "up to" that. Building the ZIP to weigh it would cost Orthanc the whole
compression for each page shown.

Sizes are remembered per study and its last change (a study that gains an
instance, e.g. a report, is weighed again), so a list shown again asks
Orthanc nothing. When Orthanc cannot answer, the link is shown without a
size rather than the page failing.
"""

import logging

from flask_babel import format_decimal

from .orthanc import OrthancError

log = logging.getLogger(__name__)

# A ZIP entry's local header (30 bytes) and directory entry (46), each with
# the file's path (patient, study, series folders: under 100 characters
# each), and a data descriptor: under 400 bytes. Also one per folder.
ZIP_ENTRY_BYTES = 400

_known = {}  # orthanc_id -> (updated_at, bytes)
_KNOWN_MAX = 10000


def study_bytes(orthanc, study):
    """At most how many bytes the study's ZIP has, or None."""
    known = _known.get(study.orthanc_id)
    if known is not None and known[0] == study.updated_at:
        return known[1]
    try:
        stats = orthanc.get(f"/studies/{study.orthanc_id}/statistics")
        entries = int(stats["CountInstances"]) + int(stats.get("CountSeries", 0)) + 2
        size = int(stats["UncompressedSize"]) + ZIP_ENTRY_BYTES * entries
    except (OrthancError, KeyError, TypeError, ValueError) as exc:
        log.warning("no download size for study %s: %s", study.orthanc_id, exc)
        return None
    if len(_known) >= _KNOWN_MAX:
        _known.clear()
    _known[study.orthanc_id] = (study.updated_at, size)
    return size


def readable(size):
    """Bytes for people, in the page's locale: "850 KB", "3,4 MB" (rounded up,
    since it is a bound)."""
    if size < 1000 * 1000:
        return f"{format_decimal(max(1, -(-size // 1000)))} KB"
    tenths = -(-size // 100_000)
    return f"{format_decimal(tenths / 10, format='#,##0.0')} MB"


def download_sizes(orthanc, studies):
    """{study id: "up to" size text} for the studies whose size is known."""
    found = {}
    for study in studies:
        size = study_bytes(orthanc, study)
        if size is not None:
            found[study.id] = readable(size)
    return found
