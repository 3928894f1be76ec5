"""Invisible video watermark: imwatermark's dwtDctSvd scheme, vectorised, with soft output.

The scheme is imwatermark's ``dwtDctSvd`` (block 4, U channel, scale 36): the frame's U
plane is Haar-DWT'd, the LL band cut into 4x4 blocks, and the largest singular value of
each block's DCT is quantised to carry one payload bit (bits repeat across blocks).
imwatermark loops over blocks in Python (~25 ms a frame at 360x288); here the same maths
runs on all blocks at once with batched SVD, and decoding returns per-bit *soft* scores
(the fraction of blocks voting 1) instead of hard bits, so votes over many frames can be
averaged. imwatermark's own decoder reads marks made here (tested), and it keeps the
detail bands in the right order where imwatermark swaps them, which is why PSNR is higher.

Across a file, every frame carries the whole payload (block i carries bit i mod 192, in
raster order). The detector (``decode_video``) does not assume the file is as issued: a
crop shifts the block grid and changes which bit the first whole block carries, a
rescale changes the block size. It searches, per file:

- size: the received size, and sizes where a received side spans a standard side (a
  rescale, a letterbox, or a crop that kept one whole side, e.g. a 9:16 centre crop);
- grid offset (dx, dy) in 0..7 pixels, and grid width C (blocks per marked row, mod 192):
  ranked by a key-free sync statistic (``_clarity``) on a few frames;
- payload phase (which bit the first whole block carries, 0..191) and a block-level
  deblurring amount: BCH + MAC decoding of the best few geometries.

The p-value is a Bonferroni bound over the whole space (sizes x 64 x amounts x 192 x
192 candidates, ~2e8), each at most ``payload.FALSE_ACCEPT_PER_ATTEMPT``; still < 1e-11.
The embedding is unchanged, so files issued before the search verify as they did.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pywt

from .payload import Decision, PayloadCodec

BLOCK = 4
UPSCALE = cv2.INTER_CUBIC  # interpolation when a received frame is smaller than the marked one


@dataclass(frozen=True)
class VideoWatermarkOptions:
    scale: float = 36.0  # quantisation step of the singular value (strength vs. PSNR)
    channel: int = 1  # YUV plane carrying the mark (1 = U, as imwatermark's default)
    decode_frames: int = 40  # frames sampled evenly across a file for detection
    search_frames: int = 6  # probe frames that rank candidate sizes and grid offsets
    search_geometries: int = 3  # best (size, offset) pairs fully decoded
    search_columns: int = 3  # grid widths (mod payload length) tried at every phase
    sharpen: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)  # block deblurring amounts tried
    max_zoom: float = 4.0  # largest rescale factor searched, either way
    # standard frame sides (either way round): a received side may span one of them
    sides: tuple[int, ...] = (
        240,
        288,
        360,
        480,
        512,
        540,
        576,
        640,
        720,
        854,
        960,
        1080,
        1280,
        1920,
    )


def _dct_matrix(n: int = BLOCK) -> npt.NDArray[np.float64]:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    d: npt.NDArray[np.float64] = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d  # orthonormal DCT-II, equal to cv2.dct on 4x4 blocks


_D = _dct_matrix()


def _blocks(band: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], int, int]:
    rows, cols = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    view = band[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK)
    return view.transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK), rows, cols


def _plane(
    bgr: npt.NDArray[Any], channel: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], int, int]:
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    rows, cols = bgr.shape[0] // 4 * 4, bgr.shape[1] // 4 * 4
    return yuv, yuv[:rows, :cols, channel].astype(np.float64), rows, cols


def embed_frame(
    bgr: npt.NDArray[Any], bits: npt.NDArray[Any], options: VideoWatermarkOptions | None = None
) -> npt.NDArray[Any]:
    """Return a copy of a BGR uint8 frame carrying ``bits``."""
    opt = options or VideoWatermarkOptions()
    yuv, plane, rows, cols = _plane(bgr, opt.channel)
    ll, details = pywt.dwt2(plane, "haar")
    blocks, br, bc = _blocks(ll)
    if len(blocks) < len(bits):
        raise ValueError(f"frame too small: {len(blocks)} blocks for {len(bits)} bits")
    coeffs = _D @ blocks @ _D.T
    u, s, vt = np.linalg.svd(coeffs)
    wanted = np.resize(np.asarray(bits, dtype=np.float64), len(blocks))
    s[:, 0] = (s[:, 0] // opt.scale + 0.25 + 0.5 * wanted) * opt.scale
    coeffs = u @ (s[:, :, None] * vt)
    marked = (_D.T @ coeffs @ _D).reshape(br, bc, BLOCK, BLOCK).transpose(0, 2, 1, 3)
    ll = ll.copy()
    ll[: br * BLOCK, : bc * BLOCK] = marked.reshape(br * BLOCK, bc * BLOCK)
    out_plane = pywt.idwt2((ll, details), "haar")
    yuv[:rows, :cols, opt.channel] = np.clip(np.rint(out_plane), 0, 255).astype(np.uint8)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)


def soft_bits_frame(
    bgr: npt.NDArray[Any], n_bits: int, options: VideoWatermarkOptions | None = None
) -> npt.NDArray[np.float64]:
    """Per-bit soft scores in [-1, 1] read from one frame (positive means 1)."""
    opt = options or VideoWatermarkOptions()
    _, plane, _, _ = _plane(bgr, opt.channel)
    ll, _ = pywt.dwt2(plane, "haar")
    blocks, _, _ = _blocks(ll)
    s0 = np.linalg.svd(_D @ blocks @ _D.T, compute_uv=False)[:, 0]
    votes = ((s0 % opt.scale) > opt.scale * 0.5).astype(np.float64)
    index = np.arange(len(votes)) % n_bits
    ones = np.bincount(index, weights=votes, minlength=n_bits)
    counts = np.bincount(index, minlength=n_bits)
    scores: npt.NDArray[np.float64] = 2.0 * ones / np.maximum(counts, 1) - 1.0
    return scores


# -- detection: a geometric search over scale, grid offset, grid width and payload phase --

GRID = 2 * BLOCK  # a payload block covers GRID x GRID frame pixels (Haar halves, 4x4 blocks)


@dataclass(frozen=True)
class Geometry:
    """Where the marked frame's block grid lies in a received frame."""

    size: tuple[int, int]  # (width, height) the received frame is resized to first
    offset: tuple[int, int]  # (dx, dy): pixels before the first whole block, 0..GRID-1
    columns: int  # blocks per row of the marked frame, modulo the payload length
    phase: int  # payload index of the first whole block, modulo the payload length
    sharpen: float = 0.0  # block-level deblurring applied before reading (``_sharpen``)


@dataclass(frozen=True)
class VideoDetection:
    decision: Decision
    soft: npt.NDArray[Any]  # the soft payload of the chosen candidate (positive means 1)
    geometry: Geometry | None
    candidates: int  # size of the candidate set searched; the p-value counts every one
    sync: float  # key-free z-score of the chosen geometry (_clarity): ~0 on unmarked


def search_sizes(width: int, height: int, options: VideoWatermarkOptions) -> list[tuple[int, int]]:
    """Candidate sizes of the received frame at the marked frame's scale.

    The received size itself (no rescale: a crop, a re-encode), then every size where one
    side of the received frame spans a standard output side (a uniform rescale, or a crop
    that kept one whole side, such as a 9:16 centre crop of a 16:9 clip, then rescaled).
    """
    sizes = [(width, height)]
    limit = max(options.sides)

    def add(size: tuple[int, int]) -> None:
        zoom = size[0] / width
        if min(size) < 4 * GRID or max(size) > limit:
            return
        if not 1 / options.max_zoom <= zoom <= options.max_zoom:
            return
        for w, h in sizes:  # within a quarter of a percent: the offset search covers it
            if abs(size[0] - w) <= 0.0025 * w and abs(size[1] - h) <= 0.0025 * h:
                return
        sizes.append(size)

    for w in options.sides:  # standard sizes of the same aspect, exactly
        for h in options.sides:
            if abs(w * height / (h * width) - 1) < 0.01:
                add((w, h))
    for side in options.sides:
        add((side, round(height * side / width)))
        add((round(width * side / height), side))
    return sizes


def _resized(frame: npt.NDArray[Any], size: tuple[int, int]) -> npt.NDArray[Any]:
    if size == (frame.shape[1], frame.shape[0]):
        return frame
    shrink = size[0] < frame.shape[1]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else UPSCALE)


def _s0_dense(plane: npt.NDArray[Any], px: int, py: int) -> npt.NDArray[np.floating[Any]]:
    """Largest singular value of the LL block at every LL position, grid parity (px, py).

    A block's singular values are those of its DCT (orthonormal), and chroma blocks are
    nearly constant, so ``|B 1| / 2`` (one power-iteration step from the flat vector) is the
    largest one to well under a quantisation step; running sums give every position.
    """
    part = plane[py:, px:]
    h2, w2 = part.shape[0] // 2, part.shape[1] // 2
    part = part[: 2 * h2, : 2 * w2]
    ll = (part[0::2, 0::2] + part[0::2, 1::2] + part[1::2, 0::2] + part[1::2, 1::2]) / 2
    rows = ll[:, :-3] + ll[:, 1:-2] + ll[:, 2:-1] + ll[:, 3:]  # sums of 4 along each row
    rows *= rows
    q = rows[:-3] + rows[1:-2] + rows[2:-1] + rows[3:]
    s0: npt.NDArray[np.floating[Any]] = np.sqrt(q) / 2
    return s0


def _s0_at(plane: npt.NDArray[Any], dx: int, dy: int) -> npt.NDArray[Any]:
    """Largest singular value of every whole block when the grid starts at pixel (dx, dy)."""
    return _s0_dense(plane, dx % 2, dy % 2)[dy // 2 :: BLOCK, dx // 2 :: BLOCK]


def _soft_maps(plane: npt.NDArray[Any], scale: float) -> list[list[npt.NDArray[Any]]]:
    """``maps[dy][dx]``: ``_soft(_s0_at(plane, dx, dy))`` for all GRID x GRID offsets."""
    maps: list[list[npt.NDArray[Any]]] = [[np.empty(0)] * GRID for _ in range(GRID)]
    for py in (0, 1):
        for px in (0, 1):
            dense = _soft(_s0_dense(plane, px, py), scale)
            for oy in range(BLOCK):
                for ox in range(BLOCK):
                    maps[2 * oy + py][2 * ox + px] = dense[oy::BLOCK, ox::BLOCK]
    return maps


def _uplane(bgr: npt.NDArray[Any], channel: int) -> npt.NDArray[Any]:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[:, :, channel].astype(np.float32)


_NEIGHBOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32) / 4


def _sharpen(s0: npt.NDArray[Any], amount: float) -> npt.NDArray[np.floating[Any]]:
    """Undo some of the blur a rescale spreads between neighbouring blocks:
    ``s0 + amount * (s0 - mean of the 4 neighbours)``."""
    if not amount:
        return s0
    near = cv2.filter2D(s0, -1, _NEIGHBOURS, borderType=cv2.BORDER_REFLECT)
    sharpened: npt.NDArray[np.floating[Any]] = s0 + amount * (s0 - near)
    return sharpened


def _soft(s0: npt.NDArray[Any], scale: float) -> npt.NDArray[np.floating[Any]]:
    """Soft bit of each block in [-1, 1]: -sin(2 pi s0 / scale) is +1 on the quantiser's
    "1" points (3/4 of a step), -1 on its "0" points (1/4), and 0 half-way."""
    soft: npt.NDArray[np.floating[Any]] = -np.sin(2 * np.pi * s0 / scale)
    return soft


def _fold(grid: npt.NDArray[Any], columns: int, n_bits: int) -> npt.NDArray[np.float64]:
    """Average the block soft values by ``(row * columns + column) % n_bits``."""
    r, c = np.indices(grid.shape)
    index = ((r * columns + c) % n_bits).ravel()
    sums = np.bincount(index, grid.ravel(), n_bits)
    means: npt.NDArray[np.float64] = sums / np.maximum(np.bincount(index, minlength=n_bits), 1)
    return means


def _clarity(grid: npt.NDArray[Any], n_bits: int) -> npt.NDArray[np.float64]:
    """Key-free sync statistic for every grid width ``C`` (mod n_bits) at once.

    Folding the centred block values by ``(r * C + c) % n_bits`` gives sums ``S_C[j]``; on
    frames without our mark (independent values) ``sum_j S_C[j]^2 / sum g^2`` is about 1,
    while the right (geometry, C) piles each payload bit onto one j and makes it large.
    All widths come from one 2-D FFT: with ``a[r, c]`` the values summed by ``(r mod n,
    c mod n)`` and ``P`` its 2-D DFT, ``DFT(S_C)[k] = P[(C k) mod n, k]``. Returned as a
    z-score of the chi-square with n - 1 degrees of freedom the null would give.
    """
    n = n_bits
    # high-pass first: the mark is white from block to block, picture content is not
    g = grid - cv2.blur(grid, (3, 3), borderType=cv2.BORDER_REFLECT)
    energy = float(np.sum(g * g))
    if energy <= 0:
        return np.zeros(n)
    if g.shape[0] > n or g.shape[1] > n:  # fold rows and columns modulo n first
        rows, cols = np.indices(g.shape)
        folded = np.bincount(((rows % n) * n + cols % n).ravel(), g.ravel(), n * n)
        g = folded.astype(np.float64, copy=False).reshape(n, n)  # weighted: float64 already
    spectrum = np.fft.rfft2(g, s=(n, n))  # [m, k] for k <= n / 2; the rest mirrors
    half = n // 2 + 1
    power = np.abs(spectrum[_fold_index(n), np.arange(half)]) ** 2  # [C, k]
    weight = np.full(half, 2.0)
    weight[0] = 0.0  # the mean carries no payload
    if n % 2 == 0:
        weight[-1] = 1.0
    chi2 = power @ weight / energy  # (1/n) sum_k |DFT(S_C)[k]|^2 / (energy / n)
    z: npt.NDArray[np.float64] = (chi2 - (n - 1)) / np.sqrt(2.0 * (n - 1))
    return z


@functools.cache
def _fold_index(n: int) -> npt.NDArray[Any]:
    k = np.arange(n)
    return (k[:, None] * k[None, : n // 2 + 1]) % n


def _probe(frames: list[npt.NDArray[Any]], count: int) -> list[npt.NDArray[Any]]:
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round())
    return [frames[int(i)] for i in picks]


def decode_video(
    frames: Iterable[npt.NDArray[Any]],
    codec: PayloadCodec,
    options: VideoWatermarkOptions | None = None,
) -> VideoDetection:
    """Decode the payload from frames that may have been rescaled, cropped or letterboxed.

    0. The file as issued: received size, grid at the origin, no shift; done if it verifies.
    1. Sync, without the key: for every candidate size (``search_sizes``), each of the 64
       grid offsets and every grid width C (mod n_bits), ``_clarity`` of the block soft
       values of a few probe frames.
    2. For the best ``search_geometries`` (size, offset), the block values averaged over
       all frames; then payload candidates: the grid as issued (no crop) first, then for
       the ``search_columns`` clearest widths, every phase. Each is BCH + MAC decoded and
       the first that verifies wins.

    The p-value counts every candidate of the whole space, decoded or not (Bonferroni):
    sizes x 64 offsets x n_bits widths x n_bits phases.
    """
    opt = options or VideoWatermarkOptions()
    frames = list(frames)
    n_bits = codec.n_bits
    if not frames:
        return _nothing(codec, 0)
    height, width = frames[0].shape[:2]
    sizes = search_sizes(width, height, opt)
    candidates = len(sizes) * GRID * GRID * len(opt.sharpen) * n_bits * n_bits
    found = _as_issued(frames, codec, opt, candidates)
    if found is not None:
        return found
    best: VideoDetection | None = None
    for sync, size, offset in _ranked_geometries(frames, sizes, n_bits, opt):
        for detection in _payload_candidates(frames, size, offset, sync, codec, opt, candidates):
            if detection.decision.found:
                return detection
            best = best or detection
    return best or _nothing(codec, candidates)  # no best: frames too small for a payload


def _nothing(codec: PayloadCodec, candidates: int) -> VideoDetection:
    n_bits = codec.n_bits
    return VideoDetection(codec.decode(np.zeros(n_bits)), np.zeros(n_bits), None, candidates, 0.0)


def _as_issued(
    frames: list[npt.NDArray[Any]], codec: PayloadCodec, opt: VideoWatermarkOptions, candidates: int
) -> VideoDetection | None:
    """Step 0: the file as issued (same size, grid at the origin): one decode, no search."""
    n_bits = codec.n_bits
    grid = np.mean([_soft(_s0_at(_uplane(f, opt.channel), 0, 0), opt.scale) for f in frames], 0)
    if grid.size < n_bits:
        return None
    soft = _fold(grid, grid.shape[1], n_bits)
    decision = codec.decode(soft, attempts=candidates)
    if not decision.found:
        return None
    height, width = frames[0].shape[:2]
    geometry = Geometry((width, height), (0, 0), grid.shape[1] % n_bits, 0)
    sync = float(_clarity(grid, n_bits)[geometry.columns])
    return VideoDetection(decision, soft, geometry, candidates, sync)


def _ranked_geometries(
    frames: list[npt.NDArray[Any]],
    sizes: list[tuple[int, int]],
    n_bits: int,
    opt: VideoWatermarkOptions,
) -> list[tuple[float, tuple[int, int], tuple[int, int]]]:
    """Step 1, without the key: the best ``search_geometries`` (clarity, size, offset)."""
    probe = _probe(frames, opt.search_frames)
    ranked: list[tuple[float, tuple[int, int], tuple[int, int]]] = []
    for size in sizes:
        grids = [[np.zeros(0)] * GRID for _ in range(GRID)]
        for index, frame in enumerate(probe):
            maps = _soft_maps(_uplane(_resized(frame, size), opt.channel), opt.scale)
            for dy in range(GRID):
                for dx in range(GRID):
                    soft = maps[dy][dx]
                    grids[dy][dx] = soft if index == 0 else grids[dy][dx] + soft
        for dy in range(GRID):
            for dx in range(GRID):
                if grids[dy][dx].size >= n_bits:
                    z = float(np.max(_clarity(grids[dy][dx], n_bits)))
                    ranked.append((z, size, (dx, dy)))
    ranked.sort(key=lambda item: -item[0])
    return ranked[: opt.search_geometries]


def _payload_candidates(
    frames: list[npt.NDArray[Any]],
    size: tuple[int, int],
    offset: tuple[int, int],
    sync: float,
    codec: PayloadCodec,
    opt: VideoWatermarkOptions,
    candidates: int,
) -> Iterator[VideoDetection]:
    """Step 2 at one geometry: the block values averaged over all frames, then each
    (grid width, phase) decoded: the grid as issued first, then the clearest widths."""
    n_bits, (dx, dy) = codec.n_bits, offset
    s0s = [_s0_at(_uplane(_resized(f, size), opt.channel), dx, dy) for f in frames]
    for amount in opt.sharpen:
        grid = np.mean([_soft(_sharpen(s0, amount), opt.scale) for s0 in s0s], axis=0)
        trials = [(grid.shape[1] % n_bits, 0)]
        for columns in np.argsort(_clarity(grid, n_bits))[::-1][: opt.search_columns]:
            trials += [(int(columns), phase) for phase in range(n_bits)]
        for columns, phase in trials:
            soft = np.roll(_fold(grid, columns, n_bits), phase)
            decision = codec.decode(soft, attempts=candidates)
            geometry = Geometry(size, offset, columns, phase, amount)
            yield VideoDetection(decision, soft, geometry, candidates, sync)
