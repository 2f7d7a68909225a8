"""TLS material made at start with the JDK's keytool, per server directory and readable by its
owner only (no key is ever part of the repository): a CA, the server's key pair signed by it and,
for mutual TLS (``server start --tls --tls-client-auth``), a truststore and a client certificate
written as PEM files, the form both the reader (``ssl_own_certificate``/``ssl_own_key``) and the
Python driver take."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .._files import write_atomically
from .layout import CA_PEM, DEFAULT_HOST, ServerError

CLIENT_CERT = "client.pem"
CLIENT_KEY = "client.key"
TRUSTSTORE = "truststore.p12"

Keytool = Callable[..., None]  # keytool(*args), the store password given through the environment
# keytool reads store passwords from this environment variable, never from argv (seen in `ps`).
PASSWORD_ENV = "CASSANDRA_DALI_KEYSTORE_PASSWORD"
PASS_ARGS = ("-storepass:env", PASSWORD_ENV)


def ensure_truststore(tls_dir: Path, ca_pem: Path, keytool: Keytool) -> Path:
    """A PKCS12 store holding only the CA's certificate: what the server checks clients with."""
    store = tls_dir / TRUSTSTORE
    if not store.is_file():
        keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
                "-keystore", str(store), "-storetype", "PKCS12", *PASS_ARGS)
        store.chmod(0o600)
    return store


def ensure_client_material(tls_dir: Path, ca_pem: Path, password: str,
                           keytool: Keytool) -> tuple[Path, Path]:
    """``(client.pem, client.key)`` in ``tls_dir``, signed by the CA there; reused if present.
    The key file is readable by the owner only."""
    cert, key = tls_dir / CLIENT_CERT, tls_dir / CLIENT_KEY
    if cert.is_file() and key.is_file():
        return cert, key
    store, csr, signed = tls_dir / "client.p12", tls_dir / "client.csr", tls_dir / "client.signed"
    for leftover in (store, csr, signed, cert, key):  # from a start that failed half-way
        leftover.unlink(missing_ok=True)
    try:
        return _make_client_material(tls_dir, ca_pem, password, keytool, store, csr, signed)
    finally:
        for temporary in (store, csr, signed):
            temporary.unlink(missing_ok=True)


def _make_client_material(tls_dir: Path, ca_pem: Path, password: str, keytool: Keytool,
                          store: Path, csr: Path, signed: Path) -> tuple[Path, Path]:
    cert, key = tls_dir / CLIENT_CERT, tls_dir / CLIENT_KEY
    keytool("-genkeypair", "-alias", "client", "-keyalg", "RSA", "-keysize", "2048",
            "-validity", "3650", "-dname", "CN=cassandra-dali client", "-keystore", str(store),
            "-storetype", "PKCS12", *PASS_ARGS, "-keypass:env", PASSWORD_ENV)
    keytool("-certreq", "-alias", "client", "-keystore", str(store), *PASS_ARGS,
            "-file", str(csr))
    keytool("-gencert", "-alias", "ca", "-keystore", str(tls_dir / "ca.p12"), *PASS_ARGS,
            "-infile", str(csr), "-outfile", str(signed), "-rfc", "-validity", "3650",
            "-ext", "ku:c=digitalSignature,keyEncipherment", "-ext", "eku=clientAuth")
    write_atomically(key, _private_key_pem(store, password), mode=0o600)
    cert.write_bytes(signed.read_bytes() + ca_pem.read_bytes())  # leaf, then its CA
    return cert, key


def _private_key_pem(pkcs12: Path, password: str) -> bytes:
    try:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )
        from cryptography.hazmat.primitives.serialization import (
            pkcs12 as pkcs12_format,
        )
    except ImportError as error:  # a dependency of the package; say so if it went missing
        raise RuntimeError(f"mutual TLS needs the Python package cryptography: {error}") from None
    key, _cert, _chain = pkcs12_format.load_key_and_certificates(
        pkcs12.read_bytes(), password.encode()
    )
    if key is None:
        raise RuntimeError(f"{pkcs12} holds no private key")
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    ca_pem: Path  # give this to clients
    keystore: Path  # PKCS12: the server's key and CA-signed certificate
    password: str


def ensure_tls(tls_dir: Path, java_home: Path, host: str = DEFAULT_HOST) -> TlsMaterial:
    """A CA and a server key pair signed by it, made with keytool; reused if already there.

    Reuse (unless the server's host name changed) keeps clients that hold ca.pem working across
    restarts. Everything is generated per directory at run time and readable by the owner only:
    no key is ever part of the repository.
    """
    password_file, san_file = tls_dir / "password", tls_dir / "san"
    san = _subject_alt_names(host)
    material_files = (tls_dir / CA_PEM, tls_dir / "server.p12", password_file, san_file)
    if all(p.is_file() for p in material_files) and san_file.read_text().strip() == san:
        password = password_file.read_text().strip()
        return TlsMaterial(tls_dir / CA_PEM, tls_dir / "server.p12", password)
    shutil.rmtree(tls_dir, ignore_errors=True)
    tls_dir.mkdir(parents=True, mode=0o700)
    password = secrets.token_hex(16)
    ca_pem = make_ca(tls_dir, java_home, password)
    ca_store, server_store = tls_dir / "ca.p12", tls_dir / "server.p12"
    csr, server_pem = tls_dir / "server.csr", tls_dir / "server.pem"

    def keytool(*args: str) -> None:
        run_keytool(java_home, password, *args)

    keytool("-genkeypair", "-alias", "server", "-keyalg", "RSA", "-keysize", "2048",
            "-validity", "3650", "-dname", "CN=localhost", "-keystore", str(server_store),
            *_NEW_KEY_ARGS)
    keytool("-certreq", "-alias", "server", "-keystore", str(server_store), *PASS_ARGS,
            "-file", str(csr))
    # The names clients check: the driver verifies the address it connected to.
    keytool("-gencert", "-alias", "ca", "-keystore", str(ca_store), *PASS_ARGS,
            "-infile", str(csr), "-outfile", str(server_pem), "-rfc", "-validity", "3650",
            "-ext", f"san={san}", "-ext", "ku:c=digitalSignature,keyEncipherment",
            "-ext", "eku=serverAuth")
    # The chain must be in the keystore before the signed certificate can replace the
    # self-signed one.
    keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
            "-keystore", str(server_store), *PASS_ARGS)
    keytool("-importcert", "-noprompt", "-alias", "server", "-file", str(server_pem),
            "-keystore", str(server_store), *PASS_ARGS)
    for leftover in (csr, server_pem):
        leftover.unlink()
    server_store.chmod(0o600)
    write_atomically(password_file, (password + "\n").encode(), mode=0o600)
    write_atomically(san_file, (san + "\n").encode())  # written last: marks the material complete
    return TlsMaterial(ca_pem, server_store, password)


def make_ca(directory: Path, java_home: Path, password: str) -> Path:
    """A self-signed CA in ``directory/ca.p12``; returns its certificate (``directory/ca.pem``)."""
    store, pem = directory / "ca.p12", directory / CA_PEM
    # keyUsage keyCertSign: strict OpenSSL verification (Python 3.13's default) requires it.
    run_keytool(java_home, password, "-genkeypair", "-alias", "ca", "-keyalg", "RSA",
                "-keysize", "2048", "-validity", "3650", "-dname", "CN=cassandra-dali local CA",
                "-ext", "bc:c=ca:true", "-ext", "ku:c=keyCertSign,cRLSign",
                "-keystore", str(store), *_NEW_KEY_ARGS)
    run_keytool(java_home, password, "-exportcert", "-rfc", "-alias", "ca",
                "-keystore", str(store), *PASS_ARGS, "-file", str(pem))
    store.chmod(0o600)
    return pem


_NEW_KEY_ARGS = ("-storetype", "PKCS12", *PASS_ARGS, "-keypass:env", PASSWORD_ENV)


def run_keytool(java_home: Path, password: str, *args: str) -> None:
    cmd = [str(java_home / "bin" / "keytool"), *args]
    env = {**os.environ, PASSWORD_ENV: password}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise ServerError(f"keytool failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def _subject_alt_names(host: str) -> str:
    names = ["dns:localhost", "ip:127.0.0.1"]
    extra = host if host not in ("0.0.0.0", "localhost", "127.0.0.1") else None
    if extra:
        try:
            ipaddress.ip_address(extra)
            names.append(f"ip:{extra}")
        except ValueError:
            names.append(f"dns:{extra}")
    return ",".join(names)

