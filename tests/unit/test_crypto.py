"""Sealing secrets at rest: versioned keys, row-bound context, tamper detection, rotation."""
import pytest

from core.platform import crypto


def ring(spec):
    return crypto.Keyring.parse(spec)


K1, K2 = crypto.generate_key(), crypto.generate_key()


def test_seal_names_the_key_and_hides_the_plaintext():
    sealed = ring(f"a:{K1}").seal(b"refresh-token-123", "connection:1:tokens")
    assert sealed.startswith("v1:a:")
    assert "refresh-token-123" not in sealed
    assert ring(f"a:{K1}").open(sealed, "connection:1:tokens") == b"refresh-token-123"


def test_same_plaintext_seals_differently_each_time():
    r = ring(f"a:{K1}")
    assert r.seal(b"x", "c") != r.seal(b"x", "c")


@pytest.mark.parametrize("context", ["connection:2:tokens", "connection:1:webhook_secrets", ""])
def test_a_value_moved_to_another_row_or_field_does_not_open(context):
    sealed = ring(f"a:{K1}").seal(b"secret", "connection:1:tokens")
    with pytest.raises(crypto.DecryptionFailed):
        ring(f"a:{K1}").open(sealed, context)


def test_tampered_ciphertext_does_not_open():
    sealed = ring(f"a:{K1}").seal(b"secret", "c")
    head, body = sealed.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(crypto.DecryptionFailed):
        ring(f"a:{K1}").open(f"{head}:{flipped}", "c")


def test_unknown_key_and_garbage_are_refused():
    sealed = ring(f"a:{K1}").seal(b"secret", "c")
    with pytest.raises(crypto.DecryptionFailed):
        ring(f"b:{K2}").open(sealed, "c")
    for junk in ("plain text", "v1:a", "v2:a:xxxx", "v1:a:!!!"):
        with pytest.raises(crypto.DecryptionFailed):
            ring(f"a:{K1}").open(junk, "c")


def test_rotation_reseals_under_the_new_primary_and_old_values_still_open():
    old = ring(f"a:{K1}")
    sealed = old.seal_json({"access_token": "t"}, "c")
    rotated = ring(f"b:{K2},a:{K1}")
    assert rotated.needs_rotation(sealed)
    assert rotated.open_json(sealed, "c") == {"access_token": "t"}
    fresh = rotated.reseal(sealed, "c")
    assert fresh.startswith("v1:b:") and not rotated.needs_rotation(fresh)
    with pytest.raises(crypto.DecryptionFailed):  # the old key alone can no longer open it
        old.open(fresh, "c")


@pytest.mark.parametrize("spec", ["", "nokey", f"a:{K1[:10]}", "a:***", f":{K1}"])
def test_bad_key_configuration_is_refused(spec):
    with pytest.raises(crypto.KeyringError):
        crypto.Keyring.parse(spec)


def test_secrets_manager_document():
    r = crypto.Keyring.from_secret_string(f'{{"primary": "b", "keys": {{"a": "{K1}", "b": "{K2}"}}}}')
    assert r.primary == "b" and set(r.keys) == {"a", "b"}
    with pytest.raises(crypto.KeyringError):
        crypto.Keyring.from_secret_string('{"primary": "c", "keys": {}}')
