"""Text folding shared by search (and, later, tag rules)."""

import unicodedata


def fold(text):
    """Case- and accent-insensitive form of a name: "NÚÑEZ^JOSÉ" -> "nunez jose".
    DICOM person-name separators (^ between components, = between groups)
    become spaces, and runs of spaces one."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().replace("^", " ").replace("=", " ").split())
