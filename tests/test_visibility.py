"""Which studies a principal sees is said twice, for speed: as a query for
lists (`visible_studies`) and as a predicate for decisions (`may_see_study`).
For random worlds of patients, studies, rule matches and shares, the two
always agree, for every kind of principal."""

import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc import ingest
from authsvc.decision.principals import (
    PatientPrincipal,
    RulePrincipal,
    SharePrincipal,
    StaffPrincipal,
)
from authsvc.decision.visibility import may_see_study, visible_studies
from authsvc.models import Patient, RuleLogin, RuleMatch, Share, StaffUser, Study
from tests.helpers import fake_study

worlds = st.fixed_dictionaries(
    {
        # study n belongs to patient owners[n]
        "owners": st.lists(st.integers(0, 3), min_size=1, max_size=6),
        # (rule login, study) pairs
        "matches": st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5)), max_size=8),
        # (patient, study or None for all of the patient's)
        "shares": st.lists(
            st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 5))), max_size=4
        ),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds)
def test_the_query_and_the_predicate_agree(app, world):
    for model in (Share, RuleMatch, RuleLogin, Study, Patient, StaffUser):
        model.delete().execute()
    studies = []
    for n, owner in enumerate(world["owners"]):
        data = fake_study(f"PV{owner}", str(n + 1))
        ingest.store_study(data["study_orthanc_id"], data)
        studies.append(Study.get(Study.orthanc_id == data["study_orthanc_id"]))
    patients = {p.patient_id: p for p in Patient.select()}
    principals = [PatientPrincipal(1, patient=p) for p in patients.values()]
    logins = [RuleLogin.create(name=f"r{i}", password_hash="x") for i in range(3)]
    for login, n in world["matches"]:
        if n < len(studies):
            RuleMatch.insert(login=logins[login], study=studies[n]).on_conflict_ignore().execute()
    principals += [RulePrincipal(2, rule_login=login) for login in logins]
    for k, (owner, n) in enumerate(world["shares"]):
        patient = patients.get(f"PV{owner}")
        if patient is None:
            continue
        study = studies[n] if n is not None and n < len(studies) else None
        share = Share.create(
            secret_hash=f"s{k}",
            patient=patient,
            study=study,
            expires_at=datetime.datetime(2999, 1, 1),
        )
        principals.append(SharePrincipal(3, share=share))
    staff = StaffUser.create(username="rad", role="radiologist", password_hash="x")
    principals.append(StaffPrincipal(4, staff=staff))
    for principal in principals:
        listed = {s.id for s in visible_studies(principal)}
        for study in studies:
            assert may_see_study(principal, study) == (study.id in listed), (
                principal.kind,
                study.id,
            )


def test_every_kind_of_login_is_in_the_property_test():
    """A new kind of login must be added to the random worlds above."""
    from authsvc.decision.principals import BY_KIND

    assert set(BY_KIND.values()) == {
        PatientPrincipal,
        RulePrincipal,
        SharePrincipal,
        StaffPrincipal,
    }
