"""The live stream engine: stamped clips played as one continuous stream on one clock.

    clips (stamped MP4s) --decode--> clock thread --raw YUV (stdin) + PCM (fd 3)--> encoder
    encoder (one ffmpeg: H.264 + AAC, MPEG-TS on stdout) --fan-out--> one relay per output
    relay: ``ffmpeg -c copy`` to ``-f flv rtmp(s)://...`` or to ``-f hls`` (our watch page)

**One clock.** The clock thread emits output frame ``k`` together with exactly
``sample_rate / fps`` audio samples (1764 at 25 fps and 44.1 kHz), taken from the same
clip at the same position. The encoder reads raw video at a fixed frame rate and raw PCM,
so both streams' timestamps are counts of what the engine wrote: they cannot drift apart,
whatever the CPU does. The thread paces itself to the wall clock (frame ``k`` is due at
``t0 + k / fps``) only so that the stream is live; a late frame is written late, never
skipped or duplicated, so the output timeline stays exact.

**Never a stall.** At every clip boundary the next clip is, in this order: a spliced
answer, the rest of a segment an answer interrupted, the next programme segment, else
the idle loop. The idle loop plays until something is queued and is then cut at the
next frame. Clips are prepared (audio decoded) by whoever queues them, not on the clock
thread.

**Answers do not wait for the end of a segment.** When a clip is loaded its audio is
searched for natural pauses (:func:`pauses`: at least ``pause_s`` well below the clip's
speech level); an answer queued while a segment plays is cut in at the segment's next
pause, and the segment resumes where it stopped once the answer (and any answer queued
behind it) has played. The cut lies in silence, so the sound has no click; the picture
cross-fades over ``crossfade_frames`` so it does not jump. Frames and samples still come
from one count, so the one-clock guarantee is unchanged.

**Outputs.** The encoder runs once; each output is a copying relay fed from its own queue,
so a platform that drops the connection does not touch the others. A relay that exits is
restarted with back-off (``EngineOptions.backoff_s``); the restarted one joins the
MPEG-TS stream at the next packet and the next key frame (every ``gop_seconds``).

Nothing here knows about accounts or consent: the caller (``webapp.live.show``) checks
the likeness gate and calls :meth:`Engine.abort` (outputs killed at once) or
:meth:`Engine.stop` (outputs finish cleanly).
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import numpy.typing as npt

from compliance import media


@dataclass(frozen=True)
class EngineOptions:
    """How the stream is encoded and where it goes."""

    width: int  # output frame size (clips are scaled to it); even numbers
    height: int
    fps: int = 25  # output frame rate
    sample_rate: int = 44100  # output audio rate; a multiple of fps
    video_bitrate: str = "1500k"  # H.264 target and ceiling
    audio_bitrate: str = "128k"
    gop_seconds: float = 1.0  # key frame interval: how soon a (re)joining viewer sees video
    outputs: tuple[str, ...] = ()  # rtmp:// or rtmps:// ingest URLs
    hls_dir: Path | None = None  # where the HLS playlist and segments go (None: no HLS)
    hls_segment_s: float = 1.0
    hls_list_size: int = 6
    backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)  # relay restart waits
    stable_s: float = 10.0  # a relay that ran this long starts its back-off from the start
    queue_frames: int = 50  # raw frames buffered toward the encoder (2 s at 25 fps)
    pause_s: float = 0.2  # the shortest quiet span an answer may be cut in at
    pause_db: float = -30.0  # "quiet": this far below the clip's speech level (95th pct)
    min_tail_s: float = 0.6  # a segment this close to its end is finished, not cut
    crossfade_frames: int = 3  # pictures blended where a clip is cut mid-way

    @property
    def samples_per_frame(self) -> int:
        if self.sample_rate % self.fps:
            raise ValueError("sample_rate must be a multiple of fps")
        return self.sample_rate // self.fps


def pauses(pcm: npt.NDArray[Any], options: EngineOptions) -> frozenset[int]:
    """Output frame indices at which a clip may be cut cleanly: the frame boundary nearest
    the middle of each quiet span of at least ``pause_s`` (20 ms windows whose level is
    ``pause_db`` or more below the clip's 95th-percentile level). Relative, so a noisy
    recording and a clean synthetic voice both have pauses; none in a silent clip."""
    window = options.sample_rate // 50
    n = len(pcm) // window
    if n < 2:
        return frozenset()
    rms = np.sqrt(np.mean(np.square(pcm[: n * window].astype(np.float64).reshape(n, window)), 1))
    reference = float(np.percentile(rms, 95))
    if reference <= 0:
        return frozenset()
    quiet = rms < reference * 10 ** (options.pause_db / 20)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    spf, shortest = options.samples_per_frame, options.pause_s * 50
    cuts = set()
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= shortest:
            middle = (start + end) * window / 2
            cuts.add(int(round(middle / spf)))
    return frozenset(cuts)


class Clip:
    """A stamped clip ready to play: its audio decoded now (and its pauses found), its
    frames decoded while it plays (scaled to the output size, picked by time so any source
    frame rate works)."""

    def __init__(self, path: str | os.PathLike[str], key: str, options: EngineOptions):
        self.path, self.key, self.options = Path(path), key, options
        pcm = media.audio(self.path, options.sample_rate)
        self.audio: npt.NDArray[np.int16] = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
        self.length = -(-len(self.audio) // options.samples_per_frame)  # frames, by its sound
        self.cuts = pauses(pcm, options)

    def frames(self) -> Iterator[tuple[bytes, bytes]]:
        """``(yuv420p frame, PCM s16le for that frame)`` pairs on the output clock."""
        spf = self.options.samples_per_frame
        for index, picture in enumerate(self._pictures()):
            pcm = self.audio[index * spf : (index + 1) * spf]
            if len(pcm) < spf:
                pcm = np.pad(pcm, (0, spf - len(pcm)))
            yield picture, pcm.tobytes()

    def _pictures(self) -> Iterator[bytes]:
        opts, slot, previous, last_t, step = self.options, 0, None, 0.0, 1.0 / self.options.fps
        with av.open(os.fspath(self.path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or opts.fps)
            for frame in container.decode(stream):
                last_t = float(frame.time or 0.0)
                while previous is not None and slot * step < last_t - 1e-6:
                    yield previous
                    slot += 1
                scaled = frame.reformat(width=opts.width, height=opts.height, format="yuv420p")
                previous = scaled.to_ndarray().tobytes()
            end = last_t + 1.0 / rate
            while previous is not None and slot * step < end - 1e-6:
                yield previous
                slot += 1


@dataclass
class Aired:
    """One clip that went on air: its key, the output frame it started at, and when;
    ``offset`` > 0 is the rest of a segment resumed after an answer, from that frame of
    the clip."""

    key: str
    frame: int
    at: float  # time.monotonic() when its first frame was handed to the encoder
    offset: int = 0


class Playing:
    """A clip on air (or interrupted): its frame iterator and how far it has got."""

    def __init__(self, clip: Clip, *, answer: bool = False):
        self.clip, self.answer, self.index = clip, answer, 0
        self.frames: Iterator[tuple[bytes, bytes]] = clip.frames()


@dataclass
class RelayStats:
    name: str
    starts: int = 0  # processes started (1 + restarts)
    failures: int = 0  # processes that exited before the show ended
    last_error: str = ""


@dataclass
class EngineStats:
    frames: int = 0  # output frames written
    idle_frames: int = 0
    late_frames: int = 0  # written more than one frame period after they were due
    cuts: int = 0  # segments interrupted at a pause for an answer
    max_lag_s: float = 0.0  # the latest a frame was written after it was due
    started_at: float | None = None  # time.monotonic() of the first frame
    relays: dict[str, RelayStats] = field(default_factory=dict)


class EngineError(RuntimeError):
    """The encoder failed; the message ends with its stderr."""


class Relay:
    """One output: a ``-c copy`` ffmpeg fed MPEG-TS, restarted with back-off when it exits."""

    def __init__(self, name: str, args: list[str], options: EngineOptions, stats: RelayStats):
        self.name, self.args, self.options, self.stats = name, args, options, stats
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=512)
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"relay-{name}", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        try:
            self.queue.put_nowait(chunk)
        except queue.Full:  # the output is stuck: drop what it missed, it restarts
            self._kill()

    def _start(self) -> subprocess.Popen[bytes]:
        cmd = [media.executable(), "-hide_banner", "-loglevel", "error", *self.args]
        self.stats.starts += 1
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._drain()  # a (re)started relay begins with the live edge, not stale data
            began = time.monotonic()
            self._proc = proc = self._start()
            finished = self._pump(proc)
            if finished:
                return
            self.stats.failures += 1
            self.stats.last_error = _tail(proc)
            attempt = 0 if time.monotonic() - began >= self.options.stable_s else attempt + 1
            wait = self.options.backoff_s[min(attempt, len(self.options.backoff_s) - 1)]
            self._stop.wait(wait)

    def _pump(self, proc: subprocess.Popen[bytes]) -> bool:
        """Copy queued chunks into the process; True when the stream ended cleanly."""
        assert proc.stdin is not None
        while True:
            if proc.poll() is not None:
                return False
            try:
                chunk = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if chunk is None:  # end of stream: let the muxer finish its file / stream
                _close(proc.stdin)
                _wait(proc, 5.0)
                return True
            try:
                proc.stdin.write(chunk)
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                _wait(proc, 1.0)
                return False

    def _drain(self) -> None:
        while True:
            try:
                if self.queue.get_nowait() is None:
                    self.queue.put_nowait(None)
                    return
            except queue.Empty:
                return

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def finish(self, timeout: float) -> None:
        """End of stream: the relay flushes and exits (HLS writes its end list)."""
        self._stop.set()
        try:
            self.queue.put(None, timeout=1.0)
        except queue.Full:
            self._kill()
        self._thread.join(timeout)
        self._kill()
        if self._proc is not None:
            _wait(self._proc, 1.0)

    def abort(self) -> None:
        self._stop.set()
        self._kill()
        self._thread.join(2.0)
        if self._proc is not None:
            _wait(self._proc, 1.0)


def _end_of_stream(q_: queue.Queue[bytes | None]) -> None:
    """Queue the end marker; if the writer is gone and the queue full, make room."""
    while True:
        try:
            q_.put(None, timeout=0.5)
            return
        except queue.Full:
            try:
                q_.get_nowait()
            except queue.Empty:
                pass


def _tail(proc: subprocess.Popen[bytes]) -> str:
    try:
        _, err = proc.communicate(timeout=1.0)
    except (subprocess.TimeoutExpired, ValueError):
        proc.kill()
        return "did not exit"
    return " | ".join((err or b"").decode(errors="replace").strip().splitlines()[-3:])


def _close(fh: IO[bytes]) -> None:
    try:
        fh.close()
    except OSError:
        pass


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the process (killed after ``timeout``) and close its pipes."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            _close(pipe)


def relay_args(output: str, options: EngineOptions, tcurl: str | None = None) -> list[str]:
    """The relay's ffmpeg arguments for one output URL (or the HLS folder)."""
    # probe briefly (the encoder fixed every parameter; a key frame comes every
    # gop_seconds) and do not wait to estimate a frame rate
    source = ["-f", "mpegts", "-probesize", "200000", "-analyzeduration", "500000"]
    source += ["-fpsprobesize", "0"]
    source += ["-i", "pipe:0", "-map", "0", "-c", "copy"]
    if output == "hls":
        assert options.hls_dir is not None
        folder = options.hls_dir
        return [
            *source,
            "-f",
            "hls",
            "-hls_time",
            f"{options.hls_segment_s}",
            "-hls_list_size",
            str(options.hls_list_size),
            "-hls_flags",
            "delete_segments+independent_segments+temp_file",
            "-hls_segment_filename",
            os.fspath(folder / "seg%06d.ts"),
            os.fspath(folder / "index.m3u8"),
        ]
    extra = ["-rtmp_tcurl", tcurl] if tcurl else []
    return [*source, "-f", "flv", "-flvflags", "no_duration_filesize", *extra, output]


class Engine:
    """Plays clips as one live stream; see the module docstring.

    ``Engine(options, idle).start()``, then from any thread :meth:`play` (programme
    segments, in order), :meth:`splice` (answers, before the next segment), :meth:`stop`
    or :meth:`abort`. ``aired`` lists what went on air and when; ``stats`` counts frames.
    """

    def __init__(
        self,
        options: EngineOptions,
        idle: Clip,
        targets: list[tuple[str, str | None]] | None = None,
    ):
        """``targets``: ``(dial URL, tcUrl or None)`` per RTMP output; default
        ``options.outputs`` dialled as written."""
        self.options, self.idle = options, idle
        self.targets = targets if targets is not None else [(u, None) for u in options.outputs]
        self.stats = EngineStats()
        self.aired: list[Aired] = []
        self._program: collections.deque[Clip] = collections.deque()
        self._answers: collections.deque[Clip] = collections.deque()
        self._resume: Playing | None = None  # a segment interrupted by an answer
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._aborted = threading.Event()
        self._relays: list[Relay] = []
        self._video_q: queue.Queue[bytes | None] = queue.Queue(options.queue_frames)
        self._audio_q: queue.Queue[bytes | None] = queue.Queue(options.queue_frames)
        self._threads: list[threading.Thread] = []
        self._encoder: subprocess.Popen[bytes] | None = None
        self._audio_fd: int | None = None
        self.error: str | None = None

    # -- control (any thread) -------------------------------------------------------------

    def play(self, clip: Clip) -> None:
        with self._lock:
            self._program.append(clip)

    def splice(self, clip: Clip) -> None:
        with self._lock:
            self._answers.append(clip)

    def pending(self) -> int:
        """Segments and answers queued and not yet on air (an interrupted segment's rest
        counts as one)."""
        with self._lock:
            return len(self._program) + len(self._answers) + (self._resume is not None)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads) and self.error is None

    def start(self) -> None:
        opts = self.options
        if opts.hls_dir is not None:
            opts.hls_dir.mkdir(parents=True, exist_ok=True)
        outputs = [(f"rtmp{n}", relay_args(u, opts, tc)) for n, (u, tc) in enumerate(self.targets)]
        if opts.hls_dir is not None:
            outputs.append(("hls", relay_args("hls", opts)))
        for name, args in outputs:
            stats = self.stats.relays.setdefault(name, RelayStats(name))
            self._relays.append(Relay(name, args, opts, stats))
        read_fd, self._audio_fd = os.pipe()
        try:
            self._encoder = subprocess.Popen(
                self._encoder_cmd(read_fd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(read_fd,),
            )
        finally:
            os.close(read_fd)
        for name, target in (
            ("clock", self._clock),
            ("video-writer", self._write_video),
            ("audio-writer", self._write_audio),
            ("fan-out", self._fan_out),
        ):
            thread = threading.Thread(target=target, name=f"engine-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """End the stream cleanly: the encoder flushes, the outputs close their streams."""
        self._stopping.set()
        self._join(timeout)
        for relay in self._relays:
            relay.finish(timeout)

    def abort(self) -> None:
        """Cut the stream now (consent withdrawn, avatar frozen): every process killed."""
        self._aborted.set()
        self._stopping.set()
        for relay in self._relays:
            relay.abort()
        if self._encoder is not None and self._encoder.poll() is None:
            self._encoder.kill()
        self._join(2.0)

    def _join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._encoder is not None:
            _wait(self._encoder, max(0.1, deadline - time.monotonic()))

    # -- the encoder ----------------------------------------------------------------------

    def _encoder_cmd(self, audio_fd: int) -> list[str]:
        o = self.options
        gop = str(max(1, round(o.gop_seconds * o.fps)))
        return [
            media.executable(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            f"{o.width}x{o.height}",
            "-framerate",
            str(o.fps),
            "-i",
            "pipe:0",
            "-f",
            "s16le",
            "-ar",
            str(o.sample_rate),
            "-ac",
            "1",
            "-i",
            f"pipe:{audio_fd}",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-b:v",
            o.video_bitrate,
            "-maxrate",
            o.video_bitrate,
            "-bufsize",
            o.video_bitrate,
            "-g",
            gop,
            "-keyint_min",
            gop,
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            o.audio_bitrate,
            "-ac",
            "2",
            "-f",
            "mpegts",
            "-muxdelay",
            "0",
            "-flush_packets",
            "1",
            "pipe:1",
        ]

    # -- threads --------------------------------------------------------------------------

    def _next(self) -> Playing:
        with self._lock:
            if self._answers:
                return Playing(self._answers.popleft(), answer=True)
            if self._resume is not None:
                resumed, self._resume = self._resume, None
                return resumed
            if self._program:
                return Playing(self._program.popleft())
        return Playing(self.idle)

    def _cut_now(self, playing: Playing) -> bool:
        """Leave the clip on air before its end? The idle loop: as soon as anything is
        queued. A segment: at one of its pauses when an answer waits (not in its last
        ``min_tail_s``: it ends soon anyway). An answer: never."""
        if playing.clip is self.idle:
            return self.pending() > 0
        if playing.answer or playing.index not in playing.clip.cuts:
            return False
        tail = playing.clip.length - playing.index
        with self._lock:
            waiting = bool(self._answers)
        return waiting and tail >= self.options.min_tail_s * self.options.fps

    def _clock(self) -> None:
        """Emit one frame and its audio per tick, clip after clip, until stopped."""
        step, k = 1.0 / self.options.fps, 0
        t0 = time.monotonic()
        self.stats.started_at = t0
        playing: Playing | None = None
        fade: tuple[bytes, int] | None = None  # the picture cut away from, frames blended
        last = b""
        try:
            while not self._stopping.is_set():
                item = next(playing.frames, None) if playing is not None else None
                if playing is not None and item is not None and self._cut_now(playing):
                    if playing.clip is not self.idle:
                        self.stats.cuts += 1
                        playing.frames = itertools.chain([item], playing.frames)  # not lost
                        with self._lock:
                            self._resume = playing
                    fade, item = (last, 0), None
                if item is None:
                    playing = self._next()
                    item = next(playing.frames, None)
                    if item is None:
                        continue  # an empty clip: take the next one
                    self.aired.append(
                        Aired(playing.clip.key, k, time.monotonic(), offset=playing.index)
                    )
                    if playing.index and fade is None:  # back into an interrupted segment
                        fade = (last, 0)
                assert playing is not None
                if fade is not None:
                    item, fade = self._blend(item, fade)
                due = t0 + k * step
                now = time.monotonic()
                if now < due:
                    time.sleep(due - now)
                else:
                    lag = now - due
                    self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
                    self.stats.late_frames += lag > step
                if not self._put(item):
                    return
                last = item[0]
                playing.index += 1
                k += 1
                self.stats.frames = k
                self.stats.idle_frames += playing.clip is self.idle
        except Exception as exc:  # a clip that cannot be decoded ends the show loudly
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            for q_ in (self._video_q, self._audio_q):
                _end_of_stream(q_)

    def _blend(
        self, item: tuple[bytes, bytes], fade: tuple[bytes, int]
    ) -> tuple[tuple[bytes, bytes], tuple[bytes, int] | None]:
        """Cross-fade from the picture cut away from into the new clip's first frames."""
        before, done = fade
        total = self.options.crossfade_frames
        if done >= total or len(before) != len(item[0]):
            return item, None
        weight = (done + 1) * 256 // (total + 1)  # of the new picture, out of 256
        new = np.frombuffer(item[0], np.uint8).astype(np.uint16)
        old = np.frombuffer(before, np.uint8).astype(np.uint16)
        mixed = ((new * weight + old * (256 - weight)) >> 8).astype(np.uint8)
        return (mixed.tobytes(), item[1]), (before, done + 1)

    def _put(self, item: tuple[bytes, bytes]) -> bool:
        for q_, data in ((self._video_q, item[0]), (self._audio_q, item[1])):
            while True:
                if self._aborted.is_set():
                    return False
                try:
                    q_.put(data, timeout=0.2)
                    break
                except queue.Full:
                    if self._encoder is not None and self._encoder.poll() is not None:
                        self.error = "the encoder exited"
                        return False
        return True

    def _write_video(self) -> None:
        assert self._encoder is not None and self._encoder.stdin is not None
        self._pipe_out(self._video_q, self._encoder.stdin)

    def _write_audio(self) -> None:
        assert self._audio_fd is not None
        with os.fdopen(self._audio_fd, "wb") as fh:
            self._pipe_out(self._audio_q, fh)

    def _pipe_out(self, source: queue.Queue[bytes | None], sink: IO[bytes]) -> None:
        try:
            while (data := source.get()) is not None:
                sink.write(data)
        except (BrokenPipeError, ValueError, OSError):
            if not self._aborted.is_set():
                self.error = self.error or "the encoder stopped reading"
        finally:
            _close(sink)
            self._drain(source)

    @staticmethod
    def _drain(source: queue.Queue[bytes | None]) -> None:
        while True:
            try:
                source.get_nowait()
            except queue.Empty:
                return

    def _fan_out(self) -> None:
        assert self._encoder is not None and self._encoder.stdout is not None
        out: Any = self._encoder.stdout
        try:
            while chunk := out.read1(1 << 16):
                if self._aborted.is_set():
                    return
                for relay in self._relays:
                    relay.feed(chunk)
        except (ValueError, OSError):  # closed by abort()
            return
        code = self._encoder.wait()
        if code != 0 and not self._aborted.is_set():
            assert self._encoder.stderr is not None
            err = self._encoder.stderr.read().decode(errors="replace").strip()
            self.error = self.error or f"encoder exited {code}: {err[-500:]}"
