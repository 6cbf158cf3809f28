"""Generated passwords: readable, typeable, strong enough; stored only as Argon2id."""

import re

from authsvc import passwords


def test_format_is_three_groups_of_four_from_the_alphabet():
    for _ in range(200):
        pw = passwords.generate()
        assert re.fullmatch(r"[^-]{4}-[^-]{4}-[^-]{4}", pw), pw
        assert set(pw.replace("-", "")) <= set(passwords.ALPHABET)


def test_no_ambiguous_characters_and_enough_entropy():
    assert not set("il1o0qvwy") & set(passwords.ALPHABET)
    assert len(set(passwords.ALPHABET)) == len(passwords.ALPHABET)
    assert passwords.entropy_bits() >= 50


def test_generated_passwords_differ():
    seen = {passwords.generate() for _ in range(2000)}
    assert len(seen) == 2000


def test_hash_is_argon2id_at_owasp_minimum_and_holds_no_plaintext():
    pw = passwords.generate()
    stored = passwords.hash_password(pw)
    assert pw.replace("-", "") not in stored
    params = dict(
        kv.split("=") for kv in re.search(r"\$m=([^$]+)\$", stored).group(0).strip("$").split(",")
    )
    assert stored.startswith("$argon2id$")
    assert int(params["m"]) >= 19456 and int(params["t"]) >= 2 and int(params["p"]) >= 1
    assert passwords.hash_password(pw) != stored  # salted


def test_typing_is_forgiving_for_generated_passwords_only():
    pw = passwords.generate()
    stored = passwords.hash_password(pw)
    assert passwords.verify(stored, pw)
    assert passwords.verify(stored, " " + pw.upper().replace("-", " ") + " ")
    assert not passwords.verify(stored, pw[:-1])
    assert not passwords.verify(stored, "")
    assert not passwords.verify(stored, None)
    chosen = passwords.hash_password("Staff Pass 1", generated=False)
    assert passwords.verify(chosen, "Staff Pass 1", generated=False)
    assert not passwords.verify(chosen, "staffpass1", generated=False)


def test_no_account_never_verifies():
    assert not passwords.verify(None, passwords.generate())
