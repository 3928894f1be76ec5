"""The implicit AIGC metadata label (R11, GB 45438-2025) in MP4 ``moov/udta/meta``.

Key ``AIGC``, value compact JSON with the fields in this order: Label ("1" = AI
generated), ContentProducer, ProduceID (unique per file), ReservedCode1, ContentPropagator,
PropagateID, ReservedCode2. Values are printable ASCII without spaces, quotes or
backslashes. ReservedCode1 carries an ES256 signature (base64url) by our signing key over
the other six fields, so a copied or edited label does not verify.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass

import av
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .keys import SigningKeys

KEY = "AIGC"
FIELDS = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
_VALUE = re.compile(r"^[!#-\[\]-~]*$")  # printable ASCII minus space, quote, backslash


class AigcError(ValueError):
    """A label that breaks the R11 rules; the message names the field."""


def _signed_text(fields: dict[str, str]) -> bytes:
    return ";".join(f"{k}={fields[k]}" for k in FIELDS if k != "ReservedCode1").encode()


def check(fields: dict[str, str]) -> None:
    """Raise AigcError unless ``fields`` follows R11 exactly (order, names, characters)."""
    if tuple(fields) != FIELDS:
        raise AigcError(f"AIGC fields must be exactly {FIELDS} in that order, got {tuple(fields)}")
    if fields["Label"] != "1":
        raise AigcError("AIGC Label must be '1' for AI-generated content")
    for name, value in fields.items():
        if not isinstance(value, str) or not _VALUE.match(value):
            raise AigcError(f"AIGC {name} must be printable ASCII without spaces or quotes")
    if not fields["ProduceID"]:
        raise AigcError("AIGC ProduceID must not be empty")


def build(producer: str, produce_id: str, watermark_id: str, keys: SigningKeys) -> str:
    """The signed AIGC JSON value for one file."""
    fields: dict[str, str] = OrderedDict(
        Label="1",
        ContentProducer=producer,
        ProduceID=produce_id,
        ReservedCode1="",
        ContentPropagator=producer,  # we also publish the file first
        PropagateID=produce_id,
        ReservedCode2=f"wm-{watermark_id}",
    )
    key = serialization.load_pem_private_key(keys.private_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(_signed_text(fields), ec.ECDSA(hashes.SHA256()))
    fields["ReservedCode1"] = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    check(fields)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class AigcLabel:
    fields: dict[str, str]
    schema_ok: bool  # order, names and characters follow R11
    signature_ok: bool  # ReservedCode1 verifies under our signer certificate
    problem: str | None = None


def read(path: str | os.PathLike[str], keys: SigningKeys | None = None) -> AigcLabel | None:
    """The AIGC label of an MP4, checked; None when the file carries none."""
    with av.open(os.fspath(path)) as container:
        raw = container.metadata.get(KEY)
    if raw is None:
        return None
    try:
        fields = json.loads(raw, object_pairs_hook=OrderedDict)
        check(fields)
    except (ValueError, AigcError) as exc:
        return AigcLabel(fields={}, schema_ok=False, signature_ok=False, problem=str(exc))
    return AigcLabel(fields=dict(fields), schema_ok=True, signature_ok=_verify(fields, keys))


def _verify(fields: dict[str, str], keys: SigningKeys | None) -> bool:
    if keys is None or not keys.chain.exists():
        return False
    cert = x509.load_pem_x509_certificates(keys.chain.read_bytes())[0]
    public = cert.public_key()
    token = fields["ReservedCode1"]
    try:
        signature = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, _signed_text(fields), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
