"""The pure planning algorithms of rendering, on small synthetic arrays: which training
mouth each output frame shows (``select_mouths``) and which template frame it is pasted
into (``template_indices``). No video, no training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.face.model import Ensemble, LipSpace
from pipeline.face.profiles import profile
from pipeline.face.render import FaceRig, select_mouths, template_indices
from pipeline.face.train import Trained

K = 4  # shape coefficients


def avatar(db: np.ndarray, usable: np.ndarray | None = None, **cfg: Any) -> FaceRig:
    """An avatar whose training frames have the coefficients ``db`` (unit scale)."""
    settings = profile("tiny", components=K, **cfg)
    space = LipSpace(
        np.zeros(2 * K, np.float32), np.eye(K, 2 * K, dtype=np.float32), np.ones(K, np.float32)
    )
    zeros = np.zeros(K, np.float32)
    trained = Trained(settings, Ensemble(settings, K), space, zeros, zeros, zeros)
    found = np.ones(len(db), bool) if usable is None else usable
    return FaceRig(Path("."), {"fps": 25.0}, {}, trained, db.astype(np.float32), found)


def walk(n: int, seed: int = 0) -> np.ndarray:
    """A smooth random path through shape space: neighbouring frames are close."""
    steps = np.random.default_rng(seed).normal(0, 0.3, (n, K))
    return np.cumsum(steps, axis=0).astype(np.float32)


def nearest(db: np.ndarray, usable: np.ndarray, query: np.ndarray) -> np.ndarray:
    pool = np.flatnonzero(usable)
    dist = ((query[:, None] - db[pool][None]) ** 2).sum(-1)
    return pool[dist.argmin(1)]


# select_mouths


def test_an_exact_run_of_training_frames_is_replayed_in_order() -> None:
    db = walk(60)
    chosen = select_mouths(avatar(db), db[20:35])
    assert chosen.tolist() == list(range(20, 35))


def test_every_choice_is_a_usable_training_frame() -> None:
    db = walk(50)
    usable = np.ones(50, bool)
    usable[10:20] = False
    chosen = select_mouths(avatar(db, usable), db[5:25])  # asks for the unusable ones too
    assert len(chosen) == 20 and chosen.dtype.kind == "i"
    assert usable[chosen].all() and (0 <= chosen).all() and (chosen < 50).all()


def test_without_a_jump_cost_each_frame_takes_its_nearest_shape() -> None:
    db, query = walk(40, seed=1), walk(30, seed=2)
    usable = np.arange(40) % 3 != 0
    chosen = select_mouths(avatar(db, usable, jump_cost=0.0), query)
    assert chosen.tolist() == nearest(db, usable, query).tolist()


def test_the_jump_cost_keeps_a_clip_running_through_a_one_frame_distraction() -> None:
    db = np.zeros((40, K), np.float32)
    db[:20, 0] = np.arange(20) * 0.1  # a clip opening slowly
    db[20:, 1] = 3.0 + np.arange(20) * 0.5  # another clip, far away
    db[35] = db[6] + [0.0, 0.1, 0.0, 0.0]  # ... but for one mouth close to frame 6's
    query = db[:12] + [0.0, 0.0, 0.05, 0.0]
    query[6, 1] = 0.06  # frame 6 asks for a shape a little nearer that one mouth
    greedy = select_mouths(avatar(db, jump_cost=0.0, candidates=40), query)
    smooth = select_mouths(avatar(db, jump_cost=2.0, candidates=40), query)
    assert greedy.tolist() == [*range(6), 35, *range(7, 12)]
    assert smooth.tolist() == list(range(12))


def test_fewer_usable_frames_than_candidates_and_a_single_output_frame() -> None:
    db = walk(5)
    usable = np.array([False, True, False, True, False])
    only = avatar(db, usable, candidates=12)
    assert select_mouths(only, db[:1]).tolist() == nearest(db, usable, db[:1]).tolist()
    assert select_mouths(avatar(db, usable, candidates=12), db[3:4]).tolist() == [3]


def test_the_choice_is_deterministic() -> None:
    db, query = walk(80, seed=3), walk(50, seed=4)
    first = select_mouths(avatar(db), query)
    assert np.array_equal(first, select_mouths(avatar(db), query))


# template_indices


def manifest(frames: int, loops: list[list[int]] | None = None, fps: float = 5.0) -> dict[str, Any]:
    """Clips of ``frames`` in total; ``loops`` holds each clip's loop points (clip frames)."""
    loops = loops or [[]]
    size = frames // len(loops)
    clips = [{"start": k * size, "loop_points": p} for k, p in enumerate(loops)]
    return {"frames": frames, "fps": fps, "clips": clips}


def test_without_pauses_it_plays_the_footage_forwards_then_backwards() -> None:
    got = template_indices(manifest(5), 13)
    assert got.tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4]


def test_it_bounces_between_the_first_and_last_pause() -> None:
    # pauses at frames 10 and 30 of 50 (more than 2 s apart at 5 fps)
    got = template_indices(manifest(50, [[10, 30]]), 200)
    assert got[0] == 0 and got[:31].tolist() == list(range(31))
    after = got[31:]
    assert after.min() == 10 and after.max() == 30
    assert set(got[40:].tolist()) == set(range(10, 31))  # covers the whole span


def test_pauses_are_counted_from_each_clips_start() -> None:
    got = template_indices(manifest(60, [[2], [25]]), 200, start=5)  # 2 and 30 + 25 = 55
    assert got.min() == 2 and got.max() == 55


def test_pauses_closer_than_two_seconds_still_run_to_the_last_frame() -> None:
    got = template_indices(manifest(40, [[10, 15]]), 100)  # 5 frames apart < 2 s * 5 fps
    assert got.max() == 39 and got[40:].min() == 10


@pytest.mark.parametrize("start", [0, 7, 19, 500])
def test_every_index_is_a_real_frame_and_consecutive_ones_differ_by_one(start: int) -> None:
    got = template_indices(manifest(20, [[3, 17]]), 90, start=start)
    assert len(got) == 90 and got.dtype.kind == "i"
    assert (got >= 0).all() and (got <= 19).all()
    assert set(np.abs(np.diff(got)).tolist()) == {1}
    assert got[0] == min(start, 17)  # a start past the last pause begins at it


def test_no_frames_asked_for() -> None:
    assert template_indices(manifest(20), 0).tolist() == []
