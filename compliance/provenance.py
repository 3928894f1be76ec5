"""Signed provenance with C2PA (R12): signer, trust settings, and a signing self-test."""

from __future__ import annotations

import io
import json

import c2pa
import cv2
import numpy as np

from .keys import SigningKeys

TRAINED_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def signer(keys: SigningKeys) -> c2pa.Signer:
    info = c2pa.C2paSignerInfo(
        alg=b"es256",
        sign_cert=keys.chain.read_bytes(),
        private_key=keys.private_key.read_bytes(),
        ta_url=None,  # no timestamp authority is reachable offline
    )
    return c2pa.Signer.from_info(info)


def trust_context(keys: SigningKeys) -> c2pa.Context:
    """Reader context that trusts our root, so our files validate as ``Trusted``."""
    settings = c2pa.Settings.from_dict({"trust": {"user_anchors": keys.root_cert.read_text()}})
    return c2pa.Context(settings)


def selftest(keys: SigningKeys) -> str:
    """Sign a small JPEG, read it back with our root as anchor; return its state."""
    ok, jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))
    manifest = {
        "claim_generator_info": [{"name": "dhf doctor", "version": "1"}],
        "title": "doctor self-test",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_MEDIA}]
                },
            }
        ],
    }
    out = io.BytesIO()
    with c2pa.Builder(json.dumps(manifest)) as builder, signer(keys) as sig:
        builder.sign(sig, "image/jpeg", io.BytesIO(jpeg.tobytes()), out)
    out.seek(0)
    with c2pa.Reader("image/jpeg", out, context=trust_context(keys)) as reader:
        state = json.loads(reader.json()).get("validation_state")
    if state != "Trusted":
        raise RuntimeError(f"self-signed test image validates as {state!r}, not 'Trusted'")
    return f"signed and read back: {state}"
