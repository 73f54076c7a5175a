"""``/os-keypairs``: a user's SSH keys (and x509 certificates) by name.

A keypair belongs to a user, not to a project: the ``os-keypairs:*`` rules
are checked against the user asked about, so by default nobody but its user
(and an admin, who from 2.10 names the user with ``user_id``) sees it. Importing a
public key computes its fingerprint as Nova does (MD5 of the key blob, colon
separated; SHA-1 of the DER for an x509 certificate). Without a public key,
Nova before 2.92 generates an RSA key pair and hands back the private key
once; from 2.92 a public key is required. Every keypair counts against the
user's ``key_pairs`` quota. Status codes move at 2.2 (create 201, delete 204);
``type`` appears at 2.2, paging at 2.35, strict query parameters at 2.75.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nimbus.core.api.compute.flavors import NAME_PATTERN, check_query, next_links, page_params
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.db.flavors import KeypairRecord
from nimbus.core.errors import (
    ApiError,
    DuplicateError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
)

_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NAME_PATTERN}


def _schema(minor: int) -> dict[str, Any]:
    """The create body Nova accepts at 2.``minor``."""
    chars = r"^[_\-\@\. a-zA-Z0-9]+$" if minor >= 92 else r"^[_\- a-zA-Z0-9]+$"
    fields: dict[str, Any] = {
        "name": {"allOf": [_NAME, {"type": "string", "pattern": chars}]},
        "public_key": {"type": "string"}}
    if minor >= 2:
        fields["type"] = {"type": "string", "enum": ["ssh", "x509"]}
    if minor >= 10:
        fields["user_id"] = {"type": "string"}
    inner = {"type": "object", "properties": fields, "additionalProperties": False,
             "required": ["name", "public_key"] if minor >= 92 else ["name"]}
    return {"type": "object", "properties": {"keypair": inner}, "required": ["keypair"],
            "additionalProperties": False}


# -- keys ------------------------------------------------------------------------------
def _colons(hexdigest: str) -> str:
    return ":".join(hexdigest[i:i + 2] for i in range(0, len(hexdigest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """Nova's fingerprint of an OpenSSH public key: MD5 of the key blob, colon hex."""
    try:
        serialization.load_ssh_public_key(public_key.encode())
        blob = base64.b64decode(public_key.split(" ")[1])
    except (ValueError, IndexError, TypeError, binascii.Error, UnsupportedAlgorithm):
        raise InvalidInput("Keypair data is invalid: failed to generate fingerprint") from None
    return _colons(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(pem: str) -> str:
    """Nova's fingerprint of a PEM certificate: SHA-1 of its DER, colon hex."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError) as exc:
        raise InvalidInput("Keypair data is invalid: failed to generate X509 fingerprint. "
                           f"Error message: {exc}") from None
    return _colons(cert.fingerprint(hashes.SHA1()).hex())


def generate_ssh(_user_id: str, _now: float) -> tuple[str, str, str]:
    """(private key PEM, public key, fingerprint) of a new 2048-bit RSA key, as Nova's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    public = f"{public} Generated-by-Nova"
    return private, public, ssh_fingerprint(public)


def generate_x509(user_id: str, now: float) -> tuple[str, str, str]:
    """(base64 PKCS#12 key, certificate PEM, fingerprint): a WinRM client certificate for
    the user, valid ten years, as Nova makes one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    start = datetime.datetime.fromtimestamp(now, datetime.UTC)
    upn = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"),
                         _der_utf8(f"{user_id}@localhost"))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([upn]), False)
            .sign(key, hashes.SHA256()))
    bundle = pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption())
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return base64.b64encode(bundle).decode(), pem, x509_fingerprint(pem)


def _der_utf8(text: str) -> bytes:
    """``text`` as a DER UTF8String (the value of the UPN otherName)."""
    data = text.encode()
    size = len(data)
    if size < 0x80:
        head = bytes([size])
    else:
        octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(octets)]) + octets
    return b"\x0c" + head + data


# -- views -----------------------------------------------------------------------------
def _created_text(when: float | None) -> str | None:
    # Nova prints its naive UTC datetimes in ISO form, without a zone
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).replace(tzinfo=None).isoformat()


def keypair_view(creq: ComputeRequest, k: KeypairRecord, *, full: bool = False,
                 with_user: bool = False) -> dict[str, Any]:
    """A keypair as listed, or (``with_user``) as created, or (``full``) as shown."""
    out: dict[str, Any] = {"name": k.name, "public_key": k.public_key,
                           "fingerprint": k.fingerprint}
    if with_user or full:
        out["user_id"] = k.user_id
    if full:
        out.update(created_at=_created_text(k.created_at), deleted=False, deleted_at=None,
                   id=k.id, updated_at=None)
    if creq.at_least(2):
        out["type"] = k.type
    return out


# -- handlers --------------------------------------------------------------------------
def _owner(creq: ComputeRequest, asked: str | None, action: str) -> str:
    """Whose keypairs a request is about: ``asked`` (2.10+) or the caller; 403 unless
    ``os_compute_api:os-keypairs:<action>`` allows it for that user (by default the
    user themself, or an admin)."""
    user_id = (asked if creq.at_least(10) else None) or creq.ctx.user_id
    creq.authorize(f"os_compute_api:os-keypairs:{action}", {"user_id": user_id})
    return user_id


def _not_found(name: str, user_id: str) -> NotFound:
    return NotFound(f"Keypair {name} not found for user {user_id}")


async def list_keypairs(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-keypairs``: the user's keypairs by name (paged from 2.35)."""
    check_query(creq, ("user_id", "limit", "marker"))
    user_id = _owner(creq, creq.query("user_id"), "index")
    paged = creq.at_least(35)
    limit, marker = page_params(creq) if paged else (0, None)
    found = await env.store.list_keypairs(user_id, marker=marker,
                                          limit=limit if paged else None)
    body: dict[str, Any] = {"keypairs": [{"keypair": keypair_view(creq, k)} for k in found]}
    if paged:
        links = next_links(creq, [k.name for k in found], limit, "os-keypairs")
        if links:
            body["keypairs_links"] = links
    return json(body)


async def show_keypair(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-keypairs/{keypair_name}``."""
    check_query(creq, ("user_id",))
    user_id = _owner(creq, creq.query("user_id"), "show")
    name = creq.param("keypair_name")
    try:
        k = await env.store.get_keypair(user_id, name)
    except NotFound:
        raise _not_found(name, user_id) from None
    return json({"keypair": keypair_view(creq, k, full=True)})


async def create_keypair(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /os-keypairs``: import a public key, or (before 2.92) generate a key pair."""
    minor = creq.version.minor if creq.version.major == 2 else 0
    vals = creq.body(_schema(minor))["keypair"]
    user_id = _owner(creq, vals.get("user_id"), "create")
    name = vals["name"].strip()
    key_type = vals.get("type", "ssh") if creq.at_least(2) else "ssh"
    try:
        await env.store.check_quota(creq.ctx.project_id, user_id, {"key_pairs": 1})
    except QuotaExceeded:
        raise ApiError(403, "Quota exceeded, too many key pairs.") from None
    private_key: str | None = None
    if "public_key" in vals:
        public_key = vals["public_key"]
        fingerprint = (x509_fingerprint(public_key) if key_type == "x509"
                       else ssh_fingerprint(public_key))
    else:
        make = generate_x509 if key_type == "x509" else generate_ssh
        # key generation is CPU work: off the event loop in real mode
        private_key, public_key, fingerprint = await env.runtime.run_blocking(
            make, user_id, env.runtime.wall_time())
    try:
        k = await env.store.create_keypair(name=name, user_id=user_id, public_key=public_key,
                                           fingerprint=fingerprint, type=key_type,
                                           now=env.runtime.wall_time())
    except DuplicateError:
        raise ApiError(409, f"Key pair '{name}' already exists.") from None
    out = keypair_view(creq, k, with_user=True)
    if private_key is not None:
        out["private_key"] = private_key
    return json({"keypair": out}, 201 if creq.at_least(2) else 200)


async def delete_keypair(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /os-keypairs/{keypair_name}``: 202 before 2.2, 204 from it."""
    check_query(creq, ("user_id",))
    user_id = _owner(creq, creq.query("user_id"), "delete")
    name = creq.param("keypair_name")
    try:
        await env.store.delete_keypair(user_id, name, env.runtime.wall_time())
    except NotFound:
        raise _not_found(name, user_id) from None
    return json(None, 204 if creq.at_least(2) else 202)


def routes(env: ComputeEnv) -> list[Route]:
    """The keypair routes."""
    return [
        *route(env, "GET", "/os-keypairs", list_keypairs),
        *route(env, "POST", "/os-keypairs", create_keypair),
        *route(env, "GET", "/os-keypairs/{keypair_name}", show_keypair),
        *route(env, "DELETE", "/os-keypairs/{keypair_name}", delete_keypair),
    ]
