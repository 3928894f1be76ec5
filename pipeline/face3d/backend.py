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
