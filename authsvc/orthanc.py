"""The service's own client for Orthanc's REST API (direct, not through nginx).

It logs in as ORTHANC_USERNAME, which the Lua request filter lets through:
the service must read studies even though it is the one that decides access.
"""

import re

import requests

ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


class OrthancError(RuntimeError):
    """Orthanc could not be reached or answered with an error."""


class OrthancNotFound(OrthancError):
    """The resource is not (or no longer) in Orthanc."""


class OrthancClient:
    def __init__(self, url, username, password, timeout, token=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.auth = (username, password)
        if token:
            # Behind the Authorization plugin (docker), basic auth opens
            # nothing: the service's own token does (see webhook.py).
            self.http.headers["token"] = token

    def get(self, path, **params):
        return self._get(path, params).json()

    def get_bytes(self, path):
        """The raw body, e.g. a DICOM element's bytes (/instances/{id}/content/gggg-eeee)."""
        return self._get(path, None).content

    def post_bytes(self, path, data):
        """POST a body (a DICOM file to /instances); Orthanc's JSON answer."""
        try:
            response = self.http.post(
                self.url + path,
                data=data,
                timeout=self.timeout,
                headers={"Content-Type": "application/dicom"},
            )
        except requests.RequestException as exc:
            raise OrthancError(f"Orthanc unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OrthancError(f"Orthanc answered {response.status_code} to POST {path}")
        return response.json()

    def delete(self, path):
        try:
            self.http.delete(self.url + path, timeout=self.timeout)
        except requests.RequestException as exc:
            raise OrthancError(f"Orthanc unreachable: {type(exc).__name__}") from exc

    def studies_with_uid(self, uid, timeout):
        """The Orthanc IDs of every study holding this StudyInstanceUID, recorded
        by the service or not (POST /tools/lookup)."""
        try:
            response = self.http.post(self.url + "/tools/lookup", data=uid, timeout=timeout)
        except requests.RequestException as exc:
            raise OrthancError(f"Orthanc unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OrthancError(f"Orthanc answered {response.status_code} to a lookup")
        return {found["ID"] for found in response.json() if found.get("Type") == "Study"}

    def studies_of_patient(self, orthanc_id, timeout):
        """The Orthanc IDs of every study Orthanc files under this patient."""
        try:
            response = self.http.get(f"{self.url}/patients/{orthanc_id}", timeout=timeout)
        except requests.RequestException as exc:
            raise OrthancError(f"Orthanc unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OrthancError(f"Orthanc answered {response.status_code} for a patient")
        return set(response.json().get("Studies", []))

    def _get(self, path, params):
        try:
            response = self.http.get(self.url + path, params=params or None, timeout=self.timeout)
        except requests.RequestException as exc:
            raise OrthancError(f"Orthanc unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise OrthancNotFound(path)
        if response.status_code != 200:
            raise OrthancError(f"Orthanc answered {response.status_code} to GET {path}")
        return response
