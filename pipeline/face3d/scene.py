"""The rig drawn with OpenGL: four layers, three looks, one frame per call.

Layers are drawn back to front, each in its own depth range (so the face mesh is always
over the relief it fades into, and the relief never pokes through the face at an angle):
the inpainted background, the head-and-shoulders relief (its eye openings without the
irises), the mouth cavity (the person's own open mouth, mapped into the current
inner-lip contour), the irises (two discs, moved by the gaze) and the face mesh, whose
upper lids close over the eye openings in a blink. The head
and neck follow a 2D motion per frame, the shoulders stay; ``yaw`` turns the whole rig
about the vertical axis through the face (for views off the front; the relief holds up to
about 15 degrees).

Looks: ``3d_realistic`` is the photo texture, lightly modelled by its normals;
``3d_semi`` a smoothed, slightly saturated texture with stronger shading; ``3d_cartoon``
a painted texture (flat colour, ink features), shading in three toon bands and, in a
second pass, dark outlines where the picture's colour or depth jumps.

Anti-aliasing: drawn into a multisample framebuffer (``samples``, resolved before the
outline pass and the read-back) for the looks in ``ANTIALIAS``: those that keep 25 fps
at 512 x 512 with it on a 2-core llvmpipe (the README's measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from . import mesh
from .backend import GLBackend, default_backend
from .rig import Rig

LOOKS = ("3d_realistic", "3d_semi", "3d_cartoon")
LAYER_DEPTH = {"background": 0.8, "relief": 0.4, "cavity": 0.0, "eyes": 0.0, "face": -0.4}
ANTIALIAS = {"3d_realistic": 4, "3d_semi": 4, "3d_cartoon": 4}  # MSAA samples per look
IRIS_SEGMENTS = 20
IRIS_GROWTH = 1.3  # the disc's geometry reaches past the iris (its texture's alpha is soft)
LIGHT = (0.35, -0.45, -0.82)  # towards the light, from the upper left (y points down)
CAVITY_GROWTH = 1.25  # the cavity reaches this far under the lips (about the mouth centre)

VERTEX = """
#version 330
uniform vec2 size;
uniform mat3 motion;
uniform float yaw;
uniform vec3 pivot;
uniform float layer;
in vec3 in_pos;
in vec2 in_uv;
in float in_alpha;
in float in_head;
in vec3 in_normal;
out vec2 v_uv;
out float v_alpha;
out vec3 v_normal;
void main() {
    vec2 moved = (motion * vec3(in_pos.xy, 1.0)).xy;
    vec3 p = vec3(mix(in_pos.xy, moved, in_head), in_pos.z) - pivot;
    float c = cos(yaw), s = sin(yaw);
    p = vec3(c * p.x + s * p.z, p.y, -s * p.x + c * p.z) + pivot;
    v_normal = vec3(c * in_normal.x + s * in_normal.z, in_normal.y,
                    -s * in_normal.x + c * in_normal.z);
    float z = layer + 0.19 * clamp(p.z / size.x, -1.0, 1.0);
    gl_Position = vec4(p.x / size.x * 2.0 - 1.0, p.y / size.y * 2.0 - 1.0, z, 1.0);
    v_uv = in_uv;
    v_alpha = in_alpha;
}
"""

FRAGMENT = """
#version 330
uniform sampler2D tex;
uniform int look;
uniform vec3 light;
in vec2 v_uv;
in float v_alpha;
in vec3 v_normal;
out vec4 colour;
void main() {
    vec4 t = texture(tex, v_uv);
    vec3 c = t.rgb;
    float lambert = max(dot(normalize(v_normal), light), 0.0);
    if (look == 0) {
        c *= 0.9 + 0.15 * lambert;
    } else if (look == 1) {
        c *= 0.78 + 0.32 * lambert;
    } else {
        c *= lambert > 0.8 ? 1.06 : (lambert > 0.45 ? 0.9 : 0.72);
    }
    colour = vec4(c, v_alpha * t.a);
}
"""

OUTLINE_VERTEX = """
#version 330
in vec2 in_xy;
out vec2 v_uv;
void main() { v_uv = in_xy * 0.5 + 0.5; gl_Position = vec4(in_xy, 0.0, 1.0); }
"""

OUTLINE_FRAGMENT = """
#version 330
uniform sampler2D picture;
uniform sampler2D depth;
uniform vec2 texel;
in vec2 v_uv;
out vec4 colour;
float luma(vec2 at) { return dot(texture(picture, at).rgb, vec3(0.299, 0.587, 0.114)); }
void main() {
    float gx = luma(v_uv + vec2(texel.x, 0)) - luma(v_uv - vec2(texel.x, 0));
    float gy = luma(v_uv + vec2(0, texel.y)) - luma(v_uv - vec2(0, texel.y));
    float dx = texture(depth, v_uv + vec2(texel.x, 0)).r
             - texture(depth, v_uv - vec2(texel.x, 0)).r;
    float dy = texture(depth, v_uv + vec2(0, texel.y)).r
             - texture(depth, v_uv - vec2(0, texel.y)).r;
    float edge = max(smoothstep(0.16, 0.3, length(vec2(gx, gy))),
                     smoothstep(0.08, 0.2, length(vec2(dx, dy))));
    vec3 c = texture(picture, v_uv).rgb;
    colour = vec4(mix(c, c * 0.18, edge), 1.0);
}
"""


def look_texture(image: npt.NDArray[Any], look: str) -> npt.NDArray[np.uint8]:
    """The rig's texture as a look paints it (an alpha channel is kept as it is)."""
    rgb, alpha = image[..., :3], image[..., 3:]
    return np.ascontiguousarray(np.dstack([_paint(np.ascontiguousarray(rgb), look), alpha]))


def _paint(rgb: npt.NDArray[Any], look: str) -> npt.NDArray[np.uint8]:
    if look == "3d_realistic":
        return np.ascontiguousarray(rgb)
    if look == "3d_semi":
        smooth = rgb
        for _ in range(2):
            smooth = cv2.bilateralFilter(smooth, 7, 30, 5)
        hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * 1.15, 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        return np.ascontiguousarray(out)
    if look == "3d_cartoon":
        return painted(rgb)
    raise ValueError(f"unknown 3D look {look!r}; choose one of {', '.join(LOOKS)}")


@dataclass(frozen=True)
class Pose:
    """What changes per frame: the deformed vertices and the head motion."""

    face: npt.NDArray[np.float32]  # (468, 3)
    relief: npt.NDArray[np.float32]  # (M, 3)
    motion: npt.NDArray[np.float32]  # (3, 3) neutral pixels -> this frame's pixels (head)
    yaw: float = 0.0  # radians, positive turns the face to the viewer's right
    iris: npt.NDArray[np.float32] | None = None  # (2, 2) iris centres; None: the neutral's


def painted(rgb: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Flat colour: smoothed, brightness in bands (hue kept), the features' dark lines
    inked (the silhouette's outlines come from the outline pass)."""
    flat = rgb
    for _ in range(3):
        flat = cv2.bilateralFilter(flat, 9, 40, 7)
    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV)
    bands = (hsv[..., 2].astype(np.int32) // 40) * 40 + 30
    hsv[..., 2] = np.minimum(bands, 255).astype(np.uint8)
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.int32) * 5 // 4, 0, 255).astype(np.uint8)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    dark = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 15, 12)
    dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, np.ones((2, 2), np.uint8))
    return np.where(dark[..., None] > 0, out, out // 3).astype(np.uint8)


def ones(n: int) -> npt.NDArray[np.float32]:
    return np.ones(n, np.float32)


def towards(n: int) -> npt.NDArray[np.float32]:
    """``n`` normals facing the camera."""
    return np.tile(np.array([0, 0, -1], np.float32), (n, 1))


def _quad() -> npt.NDArray[np.float32]:
    return np.array([-1, -1, 1, -1, -1, 1, -1, 1, 1, -1, 1, 1], np.float32)


class Scene:
    """One OpenGL context, the rig's buffers and textures, rendering at ``out_size``."""

    def __init__(
        self,
        rig: Rig,
        look: str,
        out_size: tuple[int, int] | None = None,
        backend: GLBackend | None = None,
        samples: int | None = None,
    ) -> None:

        self.rig, self.look = rig, look
        self.look_index = LOOKS.index(look) if look in LOOKS else -1
        if self.look_index < 0:
            raise ValueError(f"unknown 3D look {look!r}; choose one of {', '.join(LOOKS)}")
        self.out_size = out_size or rig.size
        self.ctx = (backend or default_backend()).context()
        ctx = self.ctx
        self.program = ctx.program(vertex_shader=VERTEX, fragment_shader=FRAGMENT)
        w, h = self.out_size
        self.colour = ctx.texture((w, h), 4)
        self.depth = ctx.depth_texture((w, h))
        self.fbo = ctx.framebuffer([self.colour], self.depth)
        self.samples = ANTIALIAS[look] if samples is None else samples
        self.target = self.fbo
        if self.samples > 1:
            self.target = ctx.framebuffer(
                [ctx.renderbuffer((w, h), 4, samples=self.samples)],
                ctx.depth_renderbuffer((w, h), samples=self.samples),
            )
        self._textures(rig, look)
        self._buffers(rig)
        self._outline = self._outline_pass() if look == "3d_cartoon" else None
        self.program["size"].value = tuple(float(v) for v in rig.size)
        self.program["light"].value = tuple(np.array(LIGHT) / np.linalg.norm(LIGHT))
        self.program["look"].value = self.look_index
        self.program["tex"].value = 0
        face = rig.face
        self.pivot = (float(face[:, 0].mean()), float(face[:, 1].mean()), float(face[:, 2].mean()))

    def _textures(self, rig: Rig, look: str) -> None:
        def upload(rgb: npt.NDArray[Any]) -> Any:
            if rgb.shape[2] == 3:
                rgb = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
            tex = self.ctx.texture((rgb.shape[1], rgb.shape[0]), 4, np.ascontiguousarray(rgb))
            tex.repeat_x = tex.repeat_y = False
            return tex

        texture = look_texture(rig.image("texture"), look)
        self.tex_face = upload(texture)
        x0, y0, x1, y1 = rig.eye_box
        sclera = np.dstack([rig.image("sclera"), rig.image("texture")[y0:y1, x0:x1, 3:]])
        texture[y0:y1, x0:x1] = look_texture(sclera, look)  # the relief's eyes: no irises
        self.tex_relief = upload(texture)
        self.tex_iris = upload(look_texture(rig.image("iris"), look))
        self.tex_teeth = upload(look_texture(rig.image("teeth"), look))
        self.tex_back = upload(look_texture(rig.image("background"), look))

    def _static(self, uv: Any, alpha: Any, head: Any, normal: Any) -> Any:
        data = np.column_stack([uv, alpha, head, normal]).astype(np.float32)
        return self.ctx.buffer(np.ascontiguousarray(data))

    def _vao(self, positions: Any, static: Any, triangles: Any) -> Any:
        index = self.ctx.buffer(np.ascontiguousarray(triangles, np.int32))
        return self.ctx.vertex_array(
            self.program,
            [
                (positions, "3f", "in_pos"),
                (static, "2f 1f 1f 3f", "in_uv", "in_alpha", "in_head", "in_normal"),
            ],
            index_buffer=index,
            index_element_size=4,
        )

    def _buffers(self, rig: Rig) -> None:
        size = np.array(rig.size, np.float32)
        self.face_pos = self.ctx.buffer(reserve=rig.face.nbytes)
        self.relief_pos = self.ctx.buffer(reserve=rig.relief.nbytes)
        self.face_vao = self._vao(
            self.face_pos,
            self._static(
                rig.face[:, :2] / size,
                rig.face_alpha,
                rig.face_head,
                mesh.vertex_normals(rig.face, rig.triangles),
            ),
            rig.triangles,
        )
        self.relief_vao = self._vao(
            self.relief_pos,
            self._static(
                rig.relief[:, :2] / size,
                rig.relief_alpha,
                rig.relief_head,
                mesh.vertex_normals(rig.relief, rig.relief_triangles),
            ),
            rig.relief_triangles,
        )
        n = len(mesh.INNER_LIPS) + 1
        self.cavity_pos = self.ctx.buffer(reserve=n * 12)
        self.cavity_uv = _grow(rig.teeth_uv) / size
        fan = [(n - 1, k, (k + 1) % (n - 1)) for k in range(n - 1)]
        self.cavity_vao = self._vao(
            self.cavity_pos,
            self._static(self.cavity_uv, ones(n), ones(n), towards(n)),
            np.array(fan, np.int32),
        )
        self._iris_buffers(rig)
        w, h = rig.size
        corners = np.array([[0, 0, 0], [w, 0, 0], [0, h, 0], [w, h, 0]], np.float32)
        back_uv = corners[:, :2] / size
        self.back_vao = self._vao(
            self.ctx.buffer(corners),
            self._static(back_uv, ones(4), np.zeros(4, np.float32), towards(4)),
            np.array([[0, 1, 3], [0, 3, 2]], np.int32),
        )

    def _iris_buffers(self, rig: Rig) -> None:
        """Two fans (centre, then the rim) textured from the ``iris`` image."""
        n = IRIS_SEGMENTS + 1
        angle = np.linspace(0, 2 * np.pi, IRIS_SEGMENTS, endpoint=False)
        self.iris_ring = np.vstack([[0, 0], np.column_stack([np.cos(angle), np.sin(angle)])])
        x0, y0, x1, y1 = rig.eye_box
        uv = (self._iris_xy(rig.iris[:, :2]) - (x0, y0)) / (x1 - x0, y1 - y0)
        fan = [
            (e * n, e * n + 1 + k, e * n + 1 + (k + 1) % IRIS_SEGMENTS)
            for e in range(2)
            for k in range(IRIS_SEGMENTS)
        ]
        self.iris_pos = self.ctx.buffer(reserve=2 * n * 12)
        self.iris_vao = self._vao(
            self.iris_pos,
            self._static(uv, ones(2 * n), ones(2 * n), towards(2 * n)),
            np.array(fan, np.int32),
        )

    def _iris_xy(self, centres: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """(2 * (segments + 1), 2) the discs' vertices about the iris ``centres``."""
        radius = self.rig.iris[:, 3:4, None] * IRIS_GROWTH
        xy = np.asarray(centres, np.float32)[:, None] + radius * self.iris_ring[None]
        out: npt.NDArray[np.float32] = xy.reshape(-1, 2).astype(np.float32)
        return out

    def _iris(self, pose: Pose) -> npt.NDArray[np.float32]:
        centres = self.rig.iris[:, :2] if pose.iris is None else pose.iris
        xy = self._iris_xy(centres)
        z = np.repeat(self.rig.iris[:, 2], IRIS_SEGMENTS + 1)[:, None]
        return np.ascontiguousarray(np.hstack([xy, z]), np.float32)

    def _outline_pass(self) -> tuple[Any, Any, Any, Any]:
        program = self.ctx.program(vertex_shader=OUTLINE_VERTEX, fragment_shader=OUTLINE_FRAGMENT)
        w, h = self.out_size
        program["picture"].value, program["depth"].value = 0, 1
        program["texel"].value = (1.0 / w, 1.0 / h)
        vao = self.ctx.vertex_array(program, [(self.ctx.buffer(_quad()), "2f", "in_xy")])
        target = self.ctx.texture((w, h), 4)
        return program, vao, target, self.ctx.framebuffer([target])

    def draw(self, pose: Pose) -> npt.NDArray[np.uint8]:
        """One frame (RGB, ``out_size``) of the rig in ``pose``."""
        import moderngl

        ctx = self.ctx
        self.target.use()
        ctx.viewport = (0, 0, *self.out_size)
        self.target.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST | moderngl.BLEND)
        ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.program["motion"].write(np.ascontiguousarray(pose.motion.T, np.float32))
        self.program["pivot"].value = self.pivot
        self.face_pos.write(np.ascontiguousarray(pose.face, np.float32))
        self.relief_pos.write(np.ascontiguousarray(pose.relief, np.float32))
        self.cavity_pos.write(_cavity(pose.face))
        self.iris_pos.write(self._iris(pose))
        for name, vao, tex in (
            ("background", self.back_vao, self.tex_back),
            ("relief", self.relief_vao, self.tex_relief),
            ("cavity", self.cavity_vao, self.tex_teeth),
            ("eyes", self.iris_vao, self.tex_iris),
            ("face", self.face_vao, self.tex_face),
        ):
            self.program["layer"].value = LAYER_DEPTH[name]
            self.program["yaw"].value = 0.0 if name == "background" else float(pose.yaw)
            tex.use(0)
            vao.render(moderngl.TRIANGLES)
        if self.target is not self.fbo:
            ctx.copy_framebuffer(self.fbo, self.target)  # resolve the samples
        source = self.fbo
        if self._outline is not None:
            source = self._outlines()
        raw = source.read(components=3, alignment=1)
        w, h = self.out_size
        return np.frombuffer(raw, np.uint8).reshape(h, w, 3)

    def _outlines(self) -> Any:
        import moderngl

        assert self._outline is not None  # made for the cartoon look
        program, vao, _target, fbo = self._outline
        fbo.use()
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.BLEND)
        self.colour.use(0)
        self.depth.use(1)
        vao.render(moderngl.TRIANGLES)
        return fbo

    def close(self) -> None:
        self.ctx.release()


def _grow(points: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """The inner-lip contour grown about its centre, and the centre appended."""
    centre = points.mean(0)
    grown = centre + (points - centre) * CAVITY_GROWTH
    return np.vstack([grown, centre[None]]).astype(np.float32)


def _cavity(face: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Cavity vertices: the current inner-lip contour, grown, just behind the lips."""
    lips = face[list(mesh.INNER_LIPS)]
    xy = _grow(lips[:, :2])
    z = np.full((len(xy), 1), float(lips[:, 2].max()), np.float32)
    return np.ascontiguousarray(np.hstack([xy, z]), np.float32)
