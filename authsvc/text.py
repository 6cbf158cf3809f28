"""Text folding shared by search and tag rules."""

import unicodedata


def fold_text(value):
    """Case- and accent-insensitive, spaces collapsed: " Núñez  José" -> "nunez jose"."""
    decomposed = unicodedata.normalize("NFKD", value or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def fold(text):
    """A person name folded for search: "NÚÑEZ^JOSÉ" -> "nunez jose" (DICOM's
    ^ between components and = between groups become spaces)."""
    return fold_text((text or "").replace("^", " ").replace("=", " "))
