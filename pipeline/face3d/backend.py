"""Where OpenGL runs: a small interface, one implementation (headless EGL).

``moderngl.create_standalone_context(backend="egl")`` renders without a display: on a
CPU-only worker through Mesa's llvmpipe, on a worker with a GPU through its EGL driver;
the rendering code is the same. The default (GLX) backend fails without a display.
"""

from __future__ import annotations

from typing import Any, Protocol


class GLBackend(Protocol):
    name: str

    def context(self) -> Any:
        """A new moderngl context (OpenGL 3.3 core or later)."""


class EGLBackend:
    """Headless EGL: llvmpipe on CPU, the GPU's driver where there is one."""

    name = "egl"

    def context(self) -> Any:
        import moderngl

        try:
            return moderngl.create_standalone_context(backend="egl")  # type: ignore[arg-type]
        except Exception as exc:  # moderngl raises a bare Exception
            raise RuntimeError(
                f"cannot create a headless OpenGL context through EGL ({exc}); install "
                "Mesa's EGL (libegl1, libgl1-mesa-dri) or a GPU driver with EGL"
            ) from exc


def default_backend() -> GLBackend:
    return EGLBackend()


def describe(ctx: Any) -> str:
    """The renderer's name (``llvmpipe ...`` on CPU)."""
    return str(ctx.info.get("GL_RENDERER", "unknown"))


def selftest(backend: GLBackend | None = None) -> str:
    """Draw one red triangle headless and read it back (``dhf doctor``)."""
    import moderngl
    import numpy as np

    ctx = (backend or default_backend()).context()
    try:
        program = ctx.program(
            vertex_shader="#version 330\nin vec2 p; void main() { gl_Position = vec4(p, 0, 1); }",
            fragment_shader="#version 330\nout vec4 c; void main() { c = vec4(1, 0, 0, 1); }",
        )
        corners = np.array([-1, -1, 3, -1, -1, 3], np.float32)
        vao = ctx.vertex_array(program, [(ctx.buffer(corners), "2f", "p")])
        fbo = ctx.simple_framebuffer((8, 8))
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 1.0)
        vao.render(moderngl.TRIANGLES)
        pixels = np.frombuffer(fbo.read(components=3), np.uint8).reshape(-1, 3)
        if not (pixels == (255, 0, 0)).all():
            raise RuntimeError("the headless OpenGL context drew the wrong picture")
        return f"drew and read back a triangle on {describe(ctx)}"
    finally:
        ctx.release()
