"""A small GLB builder over pygltflib: one buffer, textured primitives with morph targets,
weight animations, and ``asset.extras``."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pygltflib as g

FLOAT, UINT = g.FLOAT, g.UNSIGNED_INT


class Builder:
    def __init__(self, extras: dict[str, Any]) -> None:
        self.doc = g.GLTF2(
            asset=g.Asset(version="2.0", generator="DHF face3d", extras=extras),
            scene=0,
            scenes=[g.Scene(nodes=[0])],
        )
        self.blob = bytearray()
        self.mesh_node: int | None = None

    def _view(self, data: bytes, target: int | None = None) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        view = g.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(data))
        if target is not None:
            view.target = target
        self.blob.extend(data)
        self.doc.bufferViews.append(view)
        return len(self.doc.bufferViews) - 1

    def accessor(self, array: npt.NDArray[Any], kind: str, bounds: bool = False) -> int:
        """An accessor of float32 vectors (VEC2, VEC3, SCALAR) or uint32 indices."""
        is_index = array.dtype.kind in "iu"
        data = np.ascontiguousarray(array, np.uint32 if is_index else np.float32)
        target = (
            g.ELEMENT_ARRAY_BUFFER if is_index else (g.ARRAY_BUFFER if kind != "SCALAR" else None)
        )
        acc = g.Accessor(
            bufferView=self._view(data.tobytes(), target),
            componentType=UINT if is_index else FLOAT,
            count=len(data) if kind != "SCALAR" or data.ndim == 1 else data.size,
            type=kind,
        )
        if bounds:
            flat = data.reshape(len(data), -1)
            acc.min = [float(v) for v in flat.min(0)]
            acc.max = [float(v) for v in flat.max(0)]
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1

    def material(self, name: str, rgb: npt.NDArray[Any], blend: bool) -> int:
        from .gltf import png

        view = self._view(png(rgb))
        self.doc.images.append(g.Image(bufferView=view, mimeType="image/png"))
        if not self.doc.samplers:
            self.doc.samplers.append(g.Sampler(magFilter=g.LINEAR, minFilter=g.LINEAR))
        self.doc.textures.append(g.Texture(sampler=0, source=len(self.doc.images) - 1))
        pbr = g.PbrMetallicRoughness(
            baseColorTexture=g.TextureInfo(index=len(self.doc.textures) - 1),
            metallicFactor=0.0,
            roughnessFactor=0.9,
        )
        mat = g.Material(
            name=name,
            pbrMetallicRoughness=pbr,
            alphaMode=g.BLEND if blend else g.OPAQUE,
            doubleSided=True,
        )
        self.doc.materials.append(mat)
        return len(self.doc.materials) - 1

    def mesh(self, name: str, parts: list[tuple[Any, ...]], target_names: list[str]) -> None:
        """One mesh node of primitives ``(name, xyz, uv, triangles, targets, material)``."""
        primitives = []
        for _part, xyz, uv, tris, targets, material in parts:
            attributes = g.Attributes(
                POSITION=self.accessor(xyz, "VEC3", bounds=True),
                TEXCOORD_0=self.accessor(uv, "VEC2"),
            )
            morphs = [{"POSITION": self.accessor(t, "VEC3", bounds=True)} for t in targets]
            primitives.append(
                g.Primitive(
                    attributes=attributes,
                    indices=self.accessor(np.asarray(tris).reshape(-1), "SCALAR"),
                    material=material,
                    targets=morphs,
                )
            )
        weights = [0.0] * len(target_names)
        self.doc.meshes.append(
            g.Mesh(
                name=name,
                primitives=primitives,
                weights=weights,
                extras={"targetNames": target_names},
            )
        )
        self.doc.nodes.append(g.Node(name=name, mesh=len(self.doc.meshes) - 1))
        self.mesh_node = len(self.doc.nodes) - 1

    def animation(self, name: str, weights: npt.NDArray[Any]) -> None:
        """A morph-weight animation of the mesh node, ``weights`` (T, targets) at 25 fps."""
        from .gltf import FPS

        times = np.arange(len(weights), dtype=np.float32) / FPS
        sampler = g.AnimationSampler(
            input=self.accessor(times, "SCALAR", bounds=True),
            output=self.accessor(np.asarray(weights, np.float32).reshape(-1), "SCALAR"),
            interpolation="LINEAR",
        )
        channel = g.AnimationChannel(
            sampler=0, target=g.AnimationChannelTarget(node=self.mesh_node, path="weights")
        )
        self.doc.animations.append(g.Animation(name=name, samplers=[sampler], channels=[channel]))

    def glb(self) -> bytes:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.doc.buffers = [g.Buffer(byteLength=len(self.blob))]
        self.doc.set_binary_blob(bytes(self.blob))
        return bytes(b"".join(self.doc.save_to_bytes()))
