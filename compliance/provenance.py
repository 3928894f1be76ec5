"""Signed provenance with C2PA (R12): signer, trust settings, and a signing self-test."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


GENERATOR = "Digital Human Factory"
SOFT_BINDING_ALG = "com.digitalhumanfactory.dwtdctsvd-bch.1"
CONTENT_ASSERTION = "com.digitalhumanfactory.content"


def manifest_for(content_id: str, watermark_id: str, version: str = "0.1") -> dict[str, Any]:
    """C2PA manifest of one render (R12): AI-created, watermarked, soft-bound, no training.

    It names no person and carries no thumbnail.
    """
    never = {"use": "notAllowed"}
    return {
        "claim_generator_info": [{"name": GENERATOR, "version": version}],
        "title": f"{content_id}.mp4",
        "format": "video/mp4",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_MEDIA,
                            "softwareAgent": {"name": GENERATOR, "version": version},
                        },
                        {
                            "action": "c2pa.watermarked",
                            "parameters": {
                                "description": "invisible watermark in frames and audio"
                            },
                        },
                    ]
                },
            },
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": SOFT_BINDING_ALG,
                    "blocks": [{"scope": {}, "value": _b64(bytes.fromhex(watermark_id))}],
                },
            },
            {
                "label": "cawg.training-mining",
                "data": {
                    "entries": {
                        "cawg.ai_generative_training": never,
                        "cawg.ai_training": never,
                        "cawg.ai_inference": never,
                        "cawg.data_mining": never,
                    }
                },
            },
            {"label": CONTENT_ASSERTION, "data": {"content_id": content_id}},
        ],
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign_mp4(
    src: Path, dst: Path, manifest: dict[str, Any], keys: SigningKeys
) -> tuple[str, bytes]:
    """Embed a signed manifest; returns ``(manifest id, manifest bytes)``."""
    with (
        c2pa.Builder(json.dumps(manifest)) as builder,
        signer(keys) as sig,
        open(src, "rb") as source,
        open(dst, "w+b") as dest,
    ):
        manifest_bytes = builder.sign(sig, "video/mp4", source, dest)
    report = read(dst, keys)
    if report is None or report.manifest_id is None:
        raise RuntimeError("the signed file carries no readable manifest")
    return report.manifest_id, bytes(manifest_bytes)


@dataclass(frozen=True)
class C2paReport:
    state: str  # "Trusted", "Valid" or "Invalid"
    manifest_id: str | None
    signer: str | None  # issuer organisation of the signing certificate
    ours: bool  # claim generated and signed by us
    assertions: list[str]
    content_id: str | None
    soft_binding: str | None  # watermark id (hex) bound to the file
    problems: list[str]


def read(path: Path, keys: SigningKeys | None) -> C2paReport | None:
    """Read and validate the manifest of an MP4; None when there is none."""
    context = trust_context(keys) if keys is not None and keys.root_cert.exists() else None
    try:
        with (
            open(path, "rb") as stream,
            c2pa.Reader("video/mp4", stream, context=context) as reader,
        ):
            report = json.loads(reader.json())
    except c2pa.C2paError:  # ManifestNotFound, or a container c2pa cannot parse
        return None
    active = report.get("active_manifest")
    manifest = report.get("manifests", {}).get(active, {})
    assertions = {a["label"]: a.get("data", {}) for a in manifest.get("assertions", [])}
    signature = manifest.get("signature_info", {})
    generators = [g.get("name") for g in manifest.get("claim_generator_info", [])]
    binding = assertions.get("c2pa.soft-binding", {})
    blocks = binding.get("blocks") or [{}]
    value = blocks[0].get("value")
    problems = [s.get("code", "") for s in report.get("validation_status") or []]
    return C2paReport(
        state=report.get("validation_state", "Invalid"),
        manifest_id=active,
        signer=signature.get("issuer"),
        ours=GENERATOR in generators and signature.get("issuer") == GENERATOR,
        assertions=sorted(assertions),
        content_id=assertions.get(CONTENT_ASSERTION, {}).get("content_id"),
        soft_binding=base64.b64decode(value).hex() if value else None,
        problems=problems,
    )
