"""The hub's Ed25519 signing key, held outside the database (docs/ledger-integrity.md).

- Private key: FORGE_SIGNING_KEY (a path, for production: a mounted secret), else
  `FORGE_HOME/keys/ledger-signing.key`, created on first use as PKCS#8 PEM with mode 0600.
- Public key: `<private key path>.pub` (SubjectPublicKeyInfo PEM), written when the first key
  is created and never replaced: it is the ledger's root of trust, what an auditor keeps.
  A rotated key is trusted because a ledger entry signed by the key before it announces it.
- Key id: sha256 hex of the 32 raw public-key bytes.

The cryptography is the `cryptography` library's; nothing here is home-made. This module
imports neither SQLAlchemy nor Dagster: the standalone proof verifier uses it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE_NAME = "ledger-signing.key"
RETIRED_FOLDER = "retired"


class SigningKeyProblem(RuntimeError):
    """A key file that cannot be used (unreadable, not Ed25519, readable by others)."""


def key_id(public_key: bytes) -> str:
    """sha256 hex of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    public_key: bytes  # raw, 32 bytes
    key_id: str

    def sign(self, message: bytes) -> str:
        """The 64-byte Ed25519 signature of `message`, as 128 hex digits."""
        return self.private_key.sign(message).hex()


def signing_key_path() -> Path:
    configured = os.environ.get("FORGE_SIGNING_KEY")
    if configured:
        return Path(configured).resolve()
    from forge_pipeline.home import forge_home

    return forge_home() / "keys" / KEY_FILE_NAME


def public_key_path(private_key_path: Path | None = None) -> Path:
    path = private_key_path or signing_key_path()
    return path.with_name(path.name + ".pub")


def load_signer(create: bool = True) -> Signer:
    """The current signing key; created (with its public key file) when there is none and `create`."""
    path = signing_key_path()
    if not path.exists():
        if not create:
            raise SigningKeyProblem(f"no signing key at {path}")
        _create_key(path)
    return _read_private_key(path)


def stage_next_key() -> Signer:
    """Write a new key to `<key>.next` (mode 0600) and return it; rotation announces it in the ledger,
    then `activate_next_key` makes it current. A rotation interrupted in between leaves the file to finish with."""
    path = next_key_path()
    if path.exists():
        return _read_private_key(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(path, Ed25519PrivateKey.generate())
    return _read_private_key(path)


def activate_next_key() -> None:
    """The staged key becomes current; the old private key moves to `retired/<key id>.key`."""
    path = signing_key_path()
    old = _read_private_key(path)
    retired = path.parent / RETIRED_FOLDER / f"{old.key_id}.key"
    retired.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not retired.exists():
        os.link(path, retired)
    next_key_path().replace(path)


def next_key_path() -> Path:
    path = signing_key_path()
    return path.with_name(path.name + ".next")


def read_public_key(path: Path) -> bytes:
    """The raw 32-byte key of a PEM public key file; SigningKeyProblem when it is not an Ed25519 key."""
    try:
        loaded = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise SigningKeyProblem(f"cannot read the public key {path}: {error}") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise SigningKeyProblem(f"{path} is not an Ed25519 public key")
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(public_key: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signature_valid(public_key: bytes, message: bytes, signature_hex: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _signer_of(private_key: Ed25519PrivateKey) -> Signer:
    public = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Signer(private_key, public, key_id(public))


def _write_private(path: Path, private_key: Ed25519PrivateKey) -> None:
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def _create_key(path: Path) -> None:
    """Write a new key and its public key file. Concurrent first uses (Dagster step processes)
    race on os.link, which fails for all but one: the others read the winner's key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    _write_private(temporary, private_key)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return
    finally:
        temporary.unlink()
    public = public_key_path(path)
    if not public.exists():
        public.write_bytes(public_key_pem(_signer_of(private_key).public_key))


def _read_private_key(path: Path) -> Signer:
    try:
        if os.stat(path).st_mode & 0o077:
            raise SigningKeyProblem(f"the signing key {path} is readable by others: chmod 600 it")
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as error:
        raise SigningKeyProblem(f"cannot read the signing key {path}: {error}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyProblem(f"{path} is not an Ed25519 private key")
    return _signer_of(loaded)
