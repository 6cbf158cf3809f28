"""Matching a rule's value against a study's tag values, the way real DICOM
data needs it.

- Tags are named by keyword ("ReferringPhysicianName") or number
  ("(0008,0090)", "0008,0090", "00080090"); stored as "gggg,eeee".
- Values arrive decoded from the study's SpecificCharacterSet (Orthanc's REST
  API gives UTF-8 whatever the file's character set was).
- Everything is compared folded: case-insensitive, accent-insensitive
  ("NÚÑEZ" = "nunez"), runs of spaces as one, leading/trailing spaces ignored.
- Person names (VR PN) are compared component by component:
  Family^Given^Middle^Prefix^Suffix. Only the first (alphabetic) component
  group counts (before any "="). The family name must be the same, whole; the
  rule's given names (given and middle, word by word) must be the first given
  names of the value, whole words: "GOMEZ^MARIA" matches "GÓMEZ^MARÍA ELENA"
  and "Gómez^María^Elena" (a second given name, written in either part), but
  not "GOMEZ^MARIANA" (not the same word), "GOMEZ^ANA MARIA" (not first),
  "GOMEZ PEREZ^MARIA" (another family name) nor "JUAN^PEREZ". A rule that
  names no given name ("PEREZ") matches only that exact value. A prefix or
  suffix (Dr., Jr.) counts only when the rule gives one. Why: hospitals'
  systems write a physician's second given name or not, in one part or the
  other; a family name or a word-prefix ("MARIA" in "MARIANA") would open
  another person's studies.
- A name written without carets by one modality ("PEREZ JUAN") matches the
  same name written with them ("PEREZ^JUAN"): when either side has a single
  component, the two are compared with their components joined by spaces,
  exactly (without carets nothing says where the family name ends, so no
  more given names are allowed). Order still counts: "JUAN PEREZ" does not
  match "PEREZ^JUAN".
- "*" (any run of characters) and "?" (one character) are wildcards as in a
  DICOM C-FIND; a wildcard rule is matched against the whole folded value
  (for a PN: its components joined by "^", trailing empty ones dropped), so
  "GOMEZ^MARIA*" matches "Gómez^María^Elena".
- A multi-valued element matches when any of its values matches; the values
  are split on "\\" at ingest.
"""

import re
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from .text import fold_text

_TAG_NUMBER = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")
# Value representations whose values people name in rules. Others (dates,
# numbers, UIDs, binary) are not recorded for matching.
TEXT_VRS = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}


class TagError(ValueError):
    """A rule names something that is not a DICOM tag."""


def tag_id(name):
    """ "ReferringPhysicianName" / "(0008,0090)" / "00080090" -> "0008,0090"."""
    if not isinstance(name, str) or not name.strip():
        raise TagError("a tag must be a keyword or (gggg,eeee)")
    text = name.strip()
    m = _TAG_NUMBER.match(text)
    if m:
        return f"{m.group(1).lower()},{m.group(2).lower()}"
    number = tag_for_keyword(text)
    if number is None:
        raise TagError(f"unknown DICOM keyword {text!r}")
    return f"{number >> 16:04x},{number & 0xFFFF:04x}"


def tag_number(tag):
    group, element = tag.split(",")
    return int(group, 16) << 16 | int(element, 16)


def tag_vr(tag):
    """The tag's VR from the standard dictionary; None for private/unknown tags."""
    try:
        return dictionary_VR(tag_number(tag))
    except KeyError:
        return None


def tag_keyword(tag):
    try:
        return keyword_for_tag(tag_number(tag)) or tag
    except KeyError:
        return tag


def is_recorded_tag(tag):
    """Tags whose text values ingest keeps for rules: standard text VRs, and
    private tags (unknown VR; only their short string values are kept)."""
    vr = tag_vr(tag)
    return vr is None or vr in TEXT_VRS


def fold_person_name(value):
    """ "Núñez ^ José^^" -> "nunez^jose" (first component group only)."""
    alphabetic = (value or "").split("=")[0]
    components = [fold_text(c) for c in alphabetic.split("^")]
    while components and not components[-1]:
        components.pop()
    return "^".join(components)


def fold_value(value, is_person_name):
    return fold_person_name(value) if is_person_name else fold_text(value)


def _wildcard_regex(folded):
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in folded)
    return re.compile(body, re.S)


@dataclass(frozen=True)
class Matcher:
    """One rule's test, compiled once."""

    tag: str
    pattern: str  # folded
    is_person_name: bool = False
    regex: re.Pattern = None
    flat_regex: re.Pattern = None  # the pattern with components joined by spaces

    @classmethod
    def compile(cls, tag, value):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a rule's value must be a non-empty string")
        tag = tag_id(tag)
        is_pn = tag_vr(tag) == "PN"
        folded = fold_value(value, is_pn)
        if not folded.strip("*?^ "):
            # "*" alone would open every study that has the tag at all.
            raise ValueError("a rule's value must name something besides wildcards")
        if "*" in folded or "?" in folded:
            return cls(
                tag,
                folded,
                is_pn,
                _wildcard_regex(folded),
                _wildcard_regex(folded.replace("^", " ")),
            )
        return cls(tag, folded, is_pn)

    @property
    def structured(self):
        """A person name with its parts (carets) and no wildcard: matched
        part by part, more given names allowed (see the module's notes)."""
        return self.is_person_name and self.regex is None and "^" in self.pattern

    def family_prefix(self):
        """What every caret-separated value this rule matches starts with
        (its family name and a caret), for an index range; None if unknown."""
        return self.pattern.split("^")[0] + "^" if self.structured else None

    def candidates(self):
        """Every folded value this rule matches, when they are few enough to
        look up in an index (no wildcard, no room for more given names); None
        otherwise. For a person name, its spellings with and without carets:
        "perez^juan", "perez juan", and for a caret-less "perez juan" also
        "perez^juan". A structured rule: only its caret-less spellings (its
        caret-separated matches are found with `family_prefix`)."""
        if self.regex is not None:
            return None
        if self.structured:
            return {self.pattern.replace("^", " ")}
        if not self.is_person_name:
            return {self.pattern}
        found = {self.pattern, self.pattern.replace("^", " ")}
        if "^" not in self.pattern:
            words = self.pattern.split(" ")
            if len(words) <= 7:  # 2^6 ways to put carets between them
                for mask in range(1 << (len(words) - 1)):
                    joined = words[0]
                    for i, word in enumerate(words[1:]):
                        joined += ("^" if mask >> i & 1 else " ") + word
                    found.add(joined)
            else:
                return None
        return {v for v in found if self.matches_folded(v)}

    def matches_folded(self, folded_value):
        if self.structured and "^" in folded_value:
            return _same_person(self.pattern.split("^"), folded_value.split("^"))
        flat = self.is_person_name and ("^" not in folded_value or "^" not in self.pattern)
        value = folded_value.replace("^", " ") if flat else folded_value
        if self.regex is not None:
            return (self.flat_regex if flat else self.regex).fullmatch(value) is not None
        return value == (self.pattern.replace("^", " ") if flat else self.pattern)

    def matches(self, raw_value):
        return self.matches_folded(fold_value(raw_value, self.is_person_name))


def _same_person(rule, value):
    """Folded name parts, both with carets: the same family name, the rule's
    given names first among the value's (whole words), the rule's prefix and
    suffix if it gives them."""
    rule, value = (rule + [""] * 5)[:5], (value + [""] * 5)[:5]
    if rule[0] != value[0]:
        return False
    given = (rule[1] + " " + rule[2]).split()
    if not given or (value[1] + " " + value[2]).split()[: len(given)] != given:
        return False
    return all(not rule[i] or rule[i] == value[i] for i in (3, 4))
