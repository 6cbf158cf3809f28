"""Rule values against real-world tag values: accents, case, spacing, person
name components, wildcards, multi-values, and the near misses that must fail."""

import pytest

from authsvc.matching import Matcher, TagError, is_recorded_tag, tag_id, tag_vr


@pytest.mark.parametrize(
    "name,expected",
    [
        ("ReferringPhysicianName", "0008,0090"),
        ("(0008,0090)", "0008,0090"),
        ("0008,0090", "0008,0090"),
        ("00080090", "0008,0090"),
        ("(0009,10AB)", "0009,10ab"),
        ("InstitutionName", "0008,0080"),
        ("ResponsibleOrganization", "0010,2299"),
        ("PerformingPhysicianName", "0008,1050"),
        ("NameOfPhysiciansReadingStudy", "0008,1060"),
    ],
)
def test_tags_by_keyword_or_number(name, expected):
    assert tag_id(name) == expected


@pytest.mark.parametrize("name", ["", "  ", "NotAKeyword", "(0008,009)", "0008-0090", None, 5])
def test_bad_tags(name):
    with pytest.raises(TagError):
        tag_id(name)


MATCH = [
    # person names: accents, case, spacing, trailing empty components
    ("ReferringPhysicianName", "NÚÑEZ^JOSÉ", "Nunez^Jose"),
    ("ReferringPhysicianName", "nunez^jose", "NÚÑEZ^JOSÉ"),
    ("ReferringPhysicianName", "PEREZ^JUAN", "PEREZ^JUAN^^^"),
    ("ReferringPhysicianName", "PEREZ^JUAN^^", "Pérez^Juan"),
    ("ReferringPhysicianName", "DE LA CRUZ^ANA", "de  la   Cruz ^ Ana"),
    ("ReferringPhysicianName", "GOMEZ^MARIA", "Gómez^María=ゴメス^マリア"),
    # more given names than the rule's, in the given or the middle part
    ("ReferringPhysicianName", "PEREZ^JUAN", "PEREZ^JUAN^CARLOS"),
    ("ReferringPhysicianName", "GOMEZ^MARIA", "GÓMEZ^MARÍA ELENA"),
    # written without carets by one modality, with them by another
    ("ReferringPhysicianName", "PEREZ^JUAN", "PEREZ JUAN"),
    ("ReferringPhysicianName", "Pérez Juan", "PEREZ^JUAN"),
    ("PerformingPhysicianName", "GOMEZ^MARIA*", "GOMEZ MARIA ELENA"),
    # wildcards, on the whole folded name
    ("ReferringPhysicianName", "GOMEZ^MARIA*", "Gómez^María^Elena^Dra."),
    ("ReferringPhysicianName", "GOMEZ*", "GOMEZ^MARIA"),
    ("ReferringPhysicianName", "G?MEZ^MARIA", "GÓMEZ^MARIA"),
    ("NameOfPhysiciansReadingStudy", "*^JOSE", "Núñez^José"),
    # text tags
    ("InstitutionName", "HOSPITAL UNIVERSITARIO", "Hospital  Universitario "),
    ("InstitutionName", "hospital universitario*", "HOSPITAL UNIVERSITARIO DE CARACAS"),
    ("InstitutionName", "CLÍNICA SAN JOSÉ", "CLINICA SAN JOSE"),
    ("ResponsibleOrganization", "FUNDACIÓN SALUD", "Fundacion Salud"),
    ("(0009,1010)", "private value", "PRIVATE VALUE"),
]

NO_MATCH = [
    ("ReferringPhysicianName", "PEREZ^JUAN", "PEREZ^JUANA"),
    ("ReferringPhysicianName", "PEREZ^JUAN", "JUAN^PEREZ"),
    ("ReferringPhysicianName", "PEREZ^JUAN", "JUAN PEREZ"),
    ("ReferringPhysicianName", "PEREZ^JUAN CARLOS", "PEREZ^JUAN"),
    ("ReferringPhysicianName", "PEREZ", "PEREZ^JUAN"),
    ("ReferringPhysicianName", "PEREZ JUAN", "PEREZ^JUANA"),
    ("ReferringPhysicianName", "NUNEZ^JOSE", "NUNES^JOSE"),
    ("ReferringPhysicianName", "GOMEZ^MARIA*", "GOMEZ^MARTA"),
    ("ReferringPhysicianName", "G?MEZ^MARIA", "GMEZ^MARIA"),
    ("ReferringPhysicianName", "PEREZ^JUAN", ""),
    ("InstitutionName", "HOSPITAL UNIVERSITARIO", "HOSPITAL UNIVERSITARIO DE CARACAS"),
    ("InstitutionName", "HOSPITAL", "CLINICA HOSPITAL"),
    ("InstitutionName", "a.b", "axb"),  # regex characters are literal
]


@pytest.mark.parametrize("tag,rule,value", MATCH)
def test_matches(tag, rule, value):
    assert Matcher.compile(tag, rule).matches(value)


@pytest.mark.parametrize("tag,rule,value", NO_MATCH)
def test_does_not_match(tag, rule, value):
    assert not Matcher.compile(tag, rule).matches(value)


@pytest.mark.parametrize("value", ["", "   ", "*", "*^*", "?", None, 3])
def test_rule_values_must_name_something(value):
    with pytest.raises(ValueError):
        Matcher.compile("InstitutionName", value)


def test_recorded_tags_are_the_text_ones():
    assert tag_vr("0008,0090") == "PN"
    assert is_recorded_tag("0008,0080") and is_recorded_tag("0010,2299")
    assert is_recorded_tag("0009,1010")  # private: kept when short text
    assert not is_recorded_tag("0008,0020")  # StudyDate
    assert not is_recorded_tag("0020,000d")  # StudyInstanceUID


@pytest.mark.parametrize("tag,rule,value", MATCH + NO_MATCH)
def test_index_candidates_agree_with_matching(tag, rule, value):
    """What the rules' indexed lookup finds is exactly what matching accepts:
    the candidates, and (a person's name with parts) the values of its family
    name, each then tested (authsvc/rules.py studies_matching)."""
    from authsvc.matching import fold_value, tag_vr

    matcher = Matcher.compile(tag, rule)
    candidates = matcher.candidates()
    if candidates is None:
        return  # wildcards: the value-by-value scan, which is `matches` itself
    folded = fold_value(value, tag_vr(matcher.tag) == "PN")
    prefix = matcher.family_prefix()
    if prefix is None:
        assert (folded in candidates) == matcher.matches(value), (rule, value)
    else:
        looked_up = folded in candidates or folded.startswith(prefix)
        assert (looked_up and matcher.matches_folded(folded)) == matcher.matches(value), (
            rule,
            value,
        )
        assert all(matcher.matches_folded(c) for c in candidates)
