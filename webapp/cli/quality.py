"""``dhf eval`` and ``dhf bench``: the quality protocol of DESIGN.md and the benchmarks.

Each prints a readable summary, or with ``--json`` the result as JSON; ``--out`` also
writes the JSON to a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click

from .. import create_app
from ..studio.service import STYLES
from . import _app_context, main

THREE_D = tuple(s for s in STYLES if s.startswith("3d_"))


@main.group()
def bench() -> None:
    """Benchmarks; a summary, or JSON with --json."""


@main.group("eval")
def eval_group() -> None:
    """Quality evaluation (DESIGN.md protocol): train on train/, score on heldout/."""


def _shared_data(*parts: str) -> Path:
    """A folder of ../shared/data beside the project (the default for eval and bench)."""
    return Path.cwd().parent.joinpath("shared", "data", *parts)


def _shown(value: object) -> str:
    """One leaf of a result as the summary shows it."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    return str(value)


def _rows(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, shown value) for every leaf of a JSON-like result."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _rows(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            yield from _rows(item, f"{path}[{index}]")
    else:
        yield path, _shown(value)


def _emit(result: dict[str, object], out: str | None, as_json: bool) -> None:
    """Print a result (JSON with --json, else one aligned line per figure); --out: JSON file."""
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    if as_json:
        click.echo(text)
        return
    rows = list(_rows(result))
    width = max((len(key) for key, _ in rows), default=0)
    for key, shown in rows:
        click.echo(f"{key:<{width}}  {shown}")


_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a summary."
)
_out_option = click.option("--out", default=None, help="Also write the JSON to this file.")


def _eval_options(data: str):
    """--train/--heldout/--profile/--json/--out shared by every ``dhf eval`` command."""

    def wrap(f):
        for option in reversed(
            [
                click.option("--train", default=None, help=f"Default: ../shared/data/{data}/train"),
                click.option(
                    "--heldout", default=None, help=f"Default: ../shared/data/{data}/heldout"
                ),
                click.option(
                    "--profile",
                    type=click.Choice(["tiny", "cpu", "gpu"]),
                    default="cpu",
                    show_default=True,
                ),
                _json_option,
                _out_option,
            ]
        ):
            f = option(f)
        return f

    return wrap


@eval_group.command("voice")
@_eval_options("voice_slt")
def eval_voice(
    train: str | None, heldout: str | None, profile: str, as_json: bool, out: str | None
) -> None:
    """Train a cloned voice on train/, synthesise every heldout/ sentence, score it."""
    from pipeline.voice.evaluate import evaluate

    train_dir = Path(train) if train else _shared_data("voice_slt", "train")
    heldout_dir = Path(heldout) if heldout else _shared_data("voice_slt", "heldout")
    _emit(evaluate(train_dir, heldout_dir, profile=profile), out, as_json)


@eval_group.command("qa")
@_json_option
@_out_option
def eval_qa(as_json: bool, out: str | None) -> None:
    """Question matching (en, zh, across languages) on the bundled Q&A test set:
    top-1 on paraphrases, fallback on out-of-scope questions, the chosen threshold."""
    from pipeline.qa.evaluate import run, summary

    result = run(Path(out) if out else None)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False) if as_json else summary(result))


@eval_group.command("face")
@_eval_options("grid_s1")
@click.option("--style", type=click.Choice(("real2d", *THREE_D)), default="real2d")
@click.option("--clips", default=6, show_default=True, help="Held-out clips (3D styles).")
@click.option(
    "--reuse", is_flag=True, help="Keep the ingest, face model and voice already in the work dir."
)
@click.option(
    "--product/--no-product",
    default=True,
    show_default=True,
    help="Also the product path: cloned voice -> face -> composite, its audio-visual sync.",
)
@click.option("--voice-profile", default=None, help="Voice profile (default: --profile).")
def eval_face(
    train: str | None,
    heldout: str | None,
    profile: str,
    as_json: bool,
    out: str | None,
    style: str,
    clips: int,
    reuse: bool,
    product: bool,
    voice_profile: str | None,
) -> None:
    """Train a face model on train/ clips, render each heldout/ clip from its real audio, score;
    then train the voice on the same footage and score the product path's sync.

    A 3D style scores its look against the 2D renderer on the same clips (identity, FaceMesh
    re-detection, mouth opening) and saves a screenshot per look in docs/results/."""
    if style in THREE_D:
        from pipeline.face3d.bench import evaluate as evaluate_3d

        shots = Path("docs/results")
        result = evaluate_3d(_shared_data("grid_s1"), profile, clips, (style,), shots)
        _emit(result, out, as_json)
        return
    from pipeline.face.evaluate import evaluate

    train_dir = Path(train) if train else _shared_data("grid_s1", "train")
    heldout_dir = Path(heldout) if heldout else _shared_data("grid_s1", "heldout")
    result = evaluate(
        train_dir, heldout_dir, profile, reuse=reuse, product=product, voice_profile=voice_profile
    )
    _emit(result, out, as_json)


@bench.command("voice")
@_json_option
@click.option("--profiles", default="tiny,cpu", show_default=True)
@_out_option
def bench_voice(as_json: bool, profiles: str, out: str | None) -> None:
    """Voice training time per profile and synthesis speed (real-time factor)."""
    from pipeline.voice.bench import bench as run_bench

    _emit(run_bench(_shared_data("voice_slt"), profiles=profiles.split(",")), out, as_json)


@bench.command("render")
@_json_option
@click.option("--seconds", default=10.0, show_default=True, help="Length of the script audio.")
@click.option("--size", default=512, show_default=True, help="Output frame size (square).")
@click.option("--profile", type=click.Choice(["tiny", "cpu", "gpu"]), default="cpu")
@click.option("--style", type=click.Choice(("real2d", *THREE_D)), default="real2d")
@click.option(
    "--footage-height",
    default=0,
    show_default=True,
    help="> 0: GRID clips upscaled to this height (1080: HD footage), output at their size.",
)
@click.option(
    "--samples",
    type=int,
    default=None,
    help="3D styles: anti-aliasing samples (0 off, 4: 4x multisampling; default: the look's).",
)
@_out_option
def bench_render(
    as_json: bool,
    seconds: float,
    size: int,
    profile: str,
    style: str,
    footage_height: int,
    samples: int | None,
    out: str | None,
) -> None:
    """Render frames per second, per stage (face model, blend or 3D drawing, composite,
    watermark, encode); a 3D style also times building its rig."""
    data = _shared_data("grid_s1")
    if style in THREE_D:
        from pipeline.face3d.bench import bench as bench_3d

        result = bench_3d(data, style, seconds=seconds, size=size, profile=profile, samples=samples)
        _emit(result, out, as_json)
        return
    from pipeline.face.bench import bench as run_bench

    result = run_bench(
        data, seconds=seconds, size=size, profile=profile, footage_height=footage_height
    )
    _emit(result, out, as_json)


@bench.command("watermark")
@_json_option
@click.option(
    "--clips", default=6, show_default=True, help="GRID clips joined into the test video."
)
@click.option(
    "--data", default=None, help="Folder of .mpg clips (default: ../shared/data/grid_s1/train)."
)
@_out_option
def bench_watermark(as_json: bool, clips: int, data: str | None, out: str | None) -> None:
    """Robustness matrix of the video and audio watermark on a real clip."""
    from compliance.bench import watermark_matrix
    from compliance.keys import init_keys

    from ..registry import compliance_settings

    folder = Path(data) if data else _shared_data("grid_s1", "train")
    sources = sorted(folder.glob("*.mpg"))[:clips]
    if not sources:
        raise click.UsageError(f"no .mpg clips in {folder}: pass --data")
    with _app_context() as app:
        init_keys(app.config["SIGNING_DIR"])
        result = watermark_matrix(sources, compliance_settings())
    _emit(result, out, as_json)


@bench.command("verify")
@_json_option
@click.option("--concurrent", default=50, show_default=True, help="Normal verifications at once.")
@click.option("--clips", default=4, show_default=True, help="GRID clips joined (cut to 10 s).")
@_out_option
def bench_verify(as_json: bool, concurrent: int, clips: int, out: str | None) -> None:
    """p50/p95 of concurrent public verifications, alone and with hostile files in flight."""
    from ..bench_verify import run

    sources = sorted(_shared_data("grid_s1", "train").glob("*.mpg"))[:clips]
    if not sources:
        raise click.UsageError("no GRID clips in ../shared/data/grid_s1/train")
    app = create_app({"RATELIMIT_ENABLED": False})
    with app.app_context():
        result = run(app, sources, concurrent)
    _emit(result, out, as_json)


@bench.command("load")
@_json_option
@click.option("--renders", default=20, show_default=True, help="Renders queued at once.")
@click.option("--verifications", default=50, show_default=True, help="Verifications at once.")
@click.option("--workers", default=2, show_default=True, help="gpu worker processes.")
@click.option(
    "--pg-admin-url",
    default="postgresql+psycopg://postgres@localhost/postgres",
    show_default=True,
    help="A PostgreSQL server where a throwaway database may be created.",
)
@click.option(
    "--verify-queue-s",
    type=float,
    default=None,
    help="DHF_VERIFY_QUEUE_S for the run (default: the configured one).",
)
@_out_option
def bench_load(
    as_json: bool,
    renders: int,
    verifications: int,
    workers: int,
    pg_admin_url: str,
    verify_queue_s: float | None,
    out: str | None,
) -> None:
    """Concurrent public verifications while queued renders run on separate workers
    (PostgreSQL, Redis, SeaweedFS S3; a tiny-profile avatar trained first)."""
    from ..bench_load import CLIPS, run

    sources = sorted(_shared_data("grid_s1", "train").glob("*.mpg"))[:CLIPS]
    if not sources:
        raise click.UsageError("no GRID clips in ../shared/data/grid_s1/train")
    result = run(
        renders=renders,
        verifications=verifications,
        workers=workers,
        pg_admin_url=pg_admin_url,
        clips=sources,
        verify_queue_s=verify_queue_s,
    )
    _emit(result, out, as_json)


@bench.command("qa")
@_json_option
@click.option("--visitors", default=20, show_default=True, help="Concurrent visitors.")
@click.option("--questions", default=5, show_default=True, help="Questions each visitor asks.")
@click.option(
    "--think", default=10.0, show_default=True, help="Seconds from an answer to the next question."
)
@click.option(
    "--compare-asr",
    is_flag=True,
    help="Also run the spoken phase the old way first (one question per 30 s Whisper pass).",
)
@_out_option
def bench_qa(
    as_json: bool, visitors: int, questions: int, think: float, compare_asr: bool, out: str | None
) -> None:
    """Q&A avatar: question to first answer-clip bytes (typed, spoken) under concurrent
    visitors on a throwaway instance, and the matcher's top-1 and fallback figures."""
    from ..qa.bench import run

    result = run(visitors=visitors, rounds=questions, think_s=think, compare_asr=compare_asr)
    _emit(result, out, as_json)


@bench.command("live")
@_json_option
@click.option("--minutes", default=2.0, show_default=True, help="Length of the show.")
@click.option(
    "--comment-every", default=20.0, show_default=True, help="Seconds between viewer comments."
)
@_out_option
def bench_live(as_json: bool, minutes: float, comment_every: float, out: str | None) -> None:
    """A show pushed to a local nginx-rtmp and pulled back: fps, stalls, A/V drift,
    time to first frame, comment-to-answer time, CPU."""
    from pipeline.live.bench import run as run_bench

    grid = _shared_data("grid_s1", "train")
    try:
        result = run_bench(grid, minutes=minutes, comment_every_s=comment_every)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(result, out, as_json)
