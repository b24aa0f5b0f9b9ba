"""Unlock-code decryption for the developer's backend: the library and `circle-bridge unlock-codes
decrypt`, with demo key pairs generated here."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from circle_bridge.unlock_codes import UnlockCodeError, decrypt_unlock_codes, load_private_key, read_codes

CODES = ["7KQ4-M2XD", "P9WB-3HTN", "ZZ23-4567", "ABCD-EFGH", "Q2W3-E4R5"]


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def encrypt(key: rsa.RSAPrivateKey, code: str, quoted: bool = True) -> str:
    plain = f'"{code}"' if quoted else code
    return base64.b64encode(key.public_key().encrypt(plain.encode(), padding.PKCS1v15())).decode()


def circle_private_key(key: rsa.RSAPrivateKey) -> bytes:
    """As Circle hands it out: base64 PKCS#8 DER, no armour."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(der)


def pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def test_decrypts_with_every_key_form(key: rsa.RSAPrivateKey) -> None:
    encrypted = [encrypt(key, c) for c in CODES[:2]]
    forms = [
        circle_private_key(key),
        circle_private_key(key)[:40] + b"\n" + circle_private_key(key)[40:] + b"\n",  # wrapped by an editor
        pem(key, serialization.PrivateFormat.PKCS8),
        pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
        base64.b64decode(circle_private_key(key)),  # raw DER
    ]
    for form in forms:
        assert decrypt_unlock_codes(load_private_key(form), encrypted) == CODES[:2]


def test_quotes_are_optional_and_removed(key: rsa.RSAPrivateKey) -> None:
    codes = [encrypt(key, "7KQ4-M2XD", quoted=False), encrypt(key, '"P9WB-3HTN"', quoted=False)]
    assert decrypt_unlock_codes(key, codes) == ["7KQ4-M2XD", "P9WB-3HTN"]


def test_a_wrong_key_of_the_same_size_is_reported(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    # OpenSSL >= 3.2 returns random bytes instead of raising (implicit rejection): the plausibility
    # check must catch it. Five codes make a false pass (about 2 % per code) negligible.
    encrypted = [encrypt(key, c) for c in CODES]
    with pytest.raises(UnlockCodeError, match="do not decrypt with this private key"):
        decrypt_unlock_codes(other_key, encrypted)


def test_a_key_of_another_size_is_reported_before_decrypting(key: rsa.RSAPrivateKey) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - only its size matters
    with pytest.raises(UnlockCodeError, match="encrypted for another key"):
        decrypt_unlock_codes(small, [encrypt(key, CODES[0])])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a key at all", "not a private key"),
        (base64.b64encode(b"\x30\x03\x02\x01\x00"), "not a private key"),
    ],
)
def test_unusable_key_files_say_why_without_echoing_them(data: bytes, message: str) -> None:
    with pytest.raises(UnlockCodeError, match=message) as caught:
        load_private_key(data)
    assert data.decode() not in str(caught.value)


def test_password_protected_and_non_rsa_keys_are_refused(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UnlockCodeError, match="password"):
        load_private_key(pem(key, serialization.PrivateFormat.PKCS8, b"hunter22"))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(UnlockCodeError, match="not an RSA key"):
        load_private_key(ec_pem)


def test_codes_that_are_not_base64_are_named_by_position(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UnlockCodeError, match="code 2 is not base64"):
        decrypt_unlock_codes(key, [encrypt(key, CODES[0]), "%%%"])


def test_read_codes_takes_every_documented_shape() -> None:
    assert read_codes('{"encryptedUnlockCodes": ["a", "b"]}') == ["a", "b"]
    assert read_codes('{"Status": {"Result": true}, "EncryptedUnlockCodes": ["a"]}') == ["a"]
    assert read_codes('["a", "b"]\n') == ["a", "b"]
    assert read_codes("a\nb\n") == ["a", "b"]
    assert read_codes("a, b") == ["a", "b"]
    for bad in ("", "  \n", "[1, 2]", '{"codes": []}', "{oops"):
        with pytest.raises(UnlockCodeError):
            read_codes(bad)


# -- the command -------------------------------------------------------------------------


def run_cli(key_file: Path, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "circle_bridge", "unlock-codes", "decrypt", "--private-key-file", str(key_file), *extra],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_key(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def test_cli_decrypts_lock_user_output_and_prints_one_code_a_line(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "circle.key", circle_private_key(key), 0o600)
    stdin = json.dumps({"encryptedUnlockCodes": [encrypt(key, c) for c in CODES[:2]]})
    done = run_cli(key_file, stdin)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "7KQ4-M2XD\nP9WB-3HTN\n"
    assert done.stderr == ""
    as_json = run_cli(key_file, stdin, "--json")
    assert json.loads(as_json.stdout) == CODES[:2]


def test_cli_warns_about_a_key_file_others_can_read(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "circle.key", pem(key, serialization.PrivateFormat.PKCS8), 0o644)
    done = run_cli(key_file, encrypt(key, CODES[0]))
    assert done.returncode == 0
    assert "chmod 600" in done.stderr


def test_cli_reports_a_wrong_key_and_never_shows_key_or_codes(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    key_data = circle_private_key(other_key)
    key_file = write_key(tmp_path / "circle.key", key_data, 0o600)
    done = run_cli(key_file, "\n".join(encrypt(key, c) for c in CODES))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "do not decrypt with this private key" in done.stderr
    for leaked in (key_data.decode()[:40], key_data.decode()[-40:], *CODES):
        assert leaked not in done.stderr


def test_cli_missing_key_file_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "nope.key", "x")
    assert done.returncode == 2
    assert "cannot read" in done.stderr
