"""ReplayCamera and SceneCamera: pacing on a fake clock, exhaustion, faults and staging."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hardware.errors import CameraError
from hardware.interfaces import Camera, Frame
from hardware.picamera import PiCamera
from hardware.replay import FrameSource, ReplayCamera, SceneCamera
from hardware.synthetic import blank_frame, render_code
from hardware.zxing import ZxingDecoder

LABEL = "CS1.L.K1.DRILL-01.1.ABCDEFGHIJKLMNOPQRSTUVWX"
PASS = "CS1.P.K1.P7Q2.M0042.LZ8K3Q.ABCDEFGHIJKLMNOP"


class FakeClock:
    """A monotonic clock that only moves when slept on (or told to)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def frames(n: int) -> list[Frame]:
    return [np.full((4, 6), i, dtype=np.uint8) for i in range(n)]


def replay(
    sources: Sequence[FrameSource], clock: FakeClock, *, fps: float | None, loop: bool = False
) -> ReplayCamera:
    camera = ReplayCamera(sources, fps=fps, loop=loop, clock=clock, sleep=clock.sleep)
    camera.start()
    return camera


# --- ReplayCamera --------------------------------------------------------------------


def test_replay_serves_frames_in_order_paced_at_fps() -> None:
    clock = FakeClock()
    sources = frames(3)
    camera: Camera = replay(sources, clock, fps=10)

    served = [camera.read(1.0) for _ in range(3)]

    assert [int(frame[0, 0]) for frame in served] == [0, 1, 2]
    assert clock.sleeps == pytest.approx([0.1, 0.1])
    assert clock.now == pytest.approx(0.2)


def test_slow_reader_gets_no_burst_of_overdue_frames() -> None:
    clock = FakeClock()
    camera = replay(frames(4), clock, fps=10)
    camera.read(1.0)

    clock.now += 0.5  # the reader spent half a second decoding
    camera.read(1.0)
    assert clock.sleeps == []
    camera.read(1.0)

    assert clock.sleeps == pytest.approx([0.1])


def test_frame_not_due_within_timeout_is_a_camera_error() -> None:
    clock = FakeClock()
    camera = replay(frames(2), clock, fps=1)
    camera.read(0.5)

    with pytest.raises(CameraError, match="no frame within"):
        camera.read(0.25)
    assert clock.now == pytest.approx(0.25)
    assert int(camera.read(1.0)[0, 0]) == 1
    assert clock.now == pytest.approx(1.0)


def test_unpaced_replay_never_sleeps() -> None:
    clock = FakeClock()
    camera = replay(frames(5), clock, fps=None)

    assert [int(camera.read(0)[0, 0]) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert clock.sleeps == []


def test_exhausted_replay_raises() -> None:
    clock = FakeClock()
    camera = replay(frames(2), clock, fps=None)
    camera.read(0)
    camera.read(0)

    with pytest.raises(CameraError, match="exhausted after 2 frames"):
        camera.read(0)
    assert camera.frames_served == 2


def test_looping_replay_starts_over() -> None:
    clock = FakeClock()
    camera = replay(frames(2), clock, fps=None, loop=True)

    assert [int(camera.read(0)[0, 0]) for _ in range(5)] == [0, 1, 0, 1, 0]


def test_replay_must_be_started_and_stop_ends_it() -> None:
    clock = FakeClock()
    camera = ReplayCamera(frames(3), fps=None, clock=clock, sleep=clock.sleep)
    with pytest.raises(CameraError, match="not started"):
        camera.read(0)

    camera.start()
    camera.read(0)
    camera.stop()
    camera.stop()  # safe twice
    with pytest.raises(CameraError, match="not started"):
        camera.read(0)

    camera.start()  # rewinds
    assert int(camera.read(0)[0, 0]) == 0


def test_stop_while_waiting_for_a_frame_raises() -> None:
    clock = FakeClock()
    camera = replay(frames(3), clock, fps=10)
    camera.read(1.0)
    clock.on_sleep = camera.stop

    with pytest.raises(CameraError, match="stopped while waiting"):
        camera.read(1.0)


def test_replay_loads_image_files_as_greyscale(tmp_path: Path) -> None:
    grey = render_code(LABEL)
    png = tmp_path / "label.png"
    Image.fromarray(grey).save(png)
    jpeg = tmp_path / "colour.jpg"
    Image.new("RGB", (64, 48), (255, 0, 0)).save(jpeg)
    clock = FakeClock()
    camera = replay([png, str(jpeg)], clock, fps=None)

    first = camera.read(0)
    second = camera.read(0)

    assert np.array_equal(first, grey)
    assert ZxingDecoder().decode(first) == [LABEL]
    assert second.shape == (48, 64)
    assert second.dtype == np.uint8
    assert abs(int(second[10, 10]) - 76) <= 2  # Pillow's L of pure red: 299/1000 * 255


def test_unreadable_file_is_a_camera_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    clock = FakeClock()
    camera = replay([tmp_path / "missing.png", broken], clock, fps=None)

    with pytest.raises(CameraError, match=r"missing\.png"):
        camera.read(0)
    with pytest.raises(CameraError, match=r"broken\.png"):
        camera.read(0)


def test_served_frames_are_read_only() -> None:
    clock = FakeClock()
    source = frames(1)
    camera = replay(source, clock, fps=None)

    frame = camera.read(0)
    with pytest.raises(ValueError, match="read-only"):
        frame[0, 0] = 99
    assert source[0].flags.writeable  # the caller's own array is left alone


@pytest.mark.parametrize(
    ("sources", "options"),
    [
        ([], {}),
        ([np.zeros((4, 4, 3), dtype=np.uint8)], {}),
        ([np.zeros((4, 4), dtype=np.float32)], {}),
        (frames(1), {"fps": 0}),
    ],
)
def test_replay_refuses_bad_setup(sources: list[Frame], options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"frame|fps"):
        ReplayCamera(sources, fps=options.get("fps", 30.0))


def test_negative_timeout_is_refused() -> None:
    camera = replay(frames(1), FakeClock(), fps=None)

    with pytest.raises(ValueError, match="timeout"):
        camera.read(-1)


# --- SceneCamera ---------------------------------------------------------------------


def scene(
    clock: FakeClock,
    *,
    fps: float | None = 30.0,
    width: int = 640,
    height: int = 480,
    render: Callable[[str], Frame] | None = None,
    blank: Frame | None = None,
) -> SceneCamera:
    camera = SceneCamera(
        width=width,
        height=height,
        fps=fps,
        render=render,
        blank=blank,
        clock=clock,
        sleep=clock.sleep,
    )
    camera.start()
    return camera


def test_scene_shows_a_blank_view_by_default() -> None:
    camera: Camera = scene(FakeClock())

    frame = camera.read(1.0)

    assert np.array_equal(frame, blank_frame())
    assert ZxingDecoder().decode(frame) == []


def test_show_puts_a_real_code_in_view_until_clear() -> None:
    camera = scene(FakeClock())

    camera.show(LABEL)
    assert camera.showing
    views = [camera.read(1.0) for _ in range(3)]
    camera.clear()

    assert all(ZxingDecoder().decode(view) == [LABEL] for view in views)
    assert not camera.showing
    assert camera.read(1.0) is camera.blank


def test_show_for_n_frames_then_blank() -> None:
    camera = scene(FakeClock())

    camera.show(LABEL, frames=2)
    views = [camera.read(1.0) for _ in range(4)]

    code = camera.rendered(LABEL)
    assert [view is code for view in views] == [True, True, False, False]
    assert views[3] is camera.blank
    assert not camera.showing


def test_new_show_replaces_the_old_one() -> None:
    camera = scene(FakeClock())

    camera.show(LABEL, frames=5)
    camera.read(1.0)
    camera.show(PASS, frames=1)

    assert camera.read(1.0) is camera.rendered(PASS)
    assert camera.read(1.0) is camera.blank


def test_rendered_codes_are_cached_per_text() -> None:
    calls: list[str] = []

    def render(text: str) -> Frame:
        calls.append(text)
        return render_code(text)

    camera = scene(FakeClock(), render=render)
    for _ in range(3):
        camera.show(LABEL, frames=1)
        camera.read(1.0)
    camera.show(PASS, frames=1)

    assert calls == [LABEL, PASS]
    assert camera.read(1.0) is camera.rendered(PASS)


def test_show_frame_serves_the_given_frame() -> None:
    camera = scene(FakeClock(), fps=None)
    custom = render_code(PASS, angle=20)

    camera.show_frame(custom, frames=1)
    served = camera.read(0)

    assert np.array_equal(served, custom)
    assert not served.flags.writeable
    assert custom.flags.writeable
    assert camera.read(0) is camera.blank


@pytest.mark.parametrize("frames", [0, -3])
def test_show_refuses_a_non_positive_frame_count(frames: int) -> None:
    camera = scene(FakeClock())

    with pytest.raises(ValueError, match="frames"):
        camera.show(LABEL, frames=frames)


def test_show_frame_refuses_colour_frames() -> None:
    camera = scene(FakeClock())

    with pytest.raises(ValueError, match="2-D uint8"):
        camera.show_frame(np.zeros((4, 4, 3), dtype=np.uint8))


def test_scene_is_paced_at_30_fps_by_default() -> None:
    clock = FakeClock()
    camera = scene(clock)

    for _ in range(4):
        camera.read(1.0)

    assert clock.sleeps == pytest.approx([1 / 30] * 3)


def test_show_during_the_wait_for_a_frame_is_seen_at_once() -> None:
    clock = FakeClock()
    camera = scene(clock)
    camera.read(1.0)
    clock.on_sleep = lambda: camera.show(LABEL)

    assert camera.read(1.0) is camera.rendered(LABEL)


def test_stalled_camera_times_out_until_resumed() -> None:
    clock = FakeClock()
    camera = scene(clock)
    camera.show(LABEL, frames=1)

    camera.stall()
    with pytest.raises(CameraError, match="no frame within"):
        camera.read(0.75)
    assert clock.sleeps == [0.75]
    camera.resume()

    # The stall used none of the shown frames.
    assert camera.read(1.0) is camera.rendered(LABEL)


def test_failed_camera_raises_at_once_until_resumed() -> None:
    clock = FakeClock()
    camera = scene(clock)

    camera.fail()
    with pytest.raises(CameraError, match="failed"):
        camera.read(5.0)
    assert clock.sleeps == []
    camera.resume()

    assert camera.read(1.0) is camera.blank


def test_scene_must_be_started_and_stop_ends_it() -> None:
    clock = FakeClock()
    camera = SceneCamera(clock=clock, sleep=clock.sleep)
    with pytest.raises(CameraError, match="not started"):
        camera.read(1.0)

    camera.start()
    camera.read(1.0)
    camera.stop()
    camera.stop()
    with pytest.raises(CameraError, match="not started"):
        camera.read(1.0)
    camera.start()
    assert camera.read(1.0) is camera.blank


def test_stop_while_the_scene_waits_for_a_frame_raises() -> None:
    clock = FakeClock()
    camera = scene(clock)
    camera.read(1.0)
    clock.on_sleep = camera.stop

    with pytest.raises(CameraError, match="stopped while waiting"):
        camera.read(1.0)


def test_frame_not_due_within_timeout_is_a_camera_error_for_scenes_too() -> None:
    clock = FakeClock()
    camera = scene(clock, fps=2)
    camera.read(1.0)

    with pytest.raises(CameraError, match="no frame within"):
        camera.read(0.1)
    assert camera.read(1.0) is camera.blank
    assert clock.now == pytest.approx(0.5)


def test_scene_size_and_blank_are_configurable() -> None:
    dark = np.full((240, 320), 40, dtype=np.uint8)
    camera = scene(FakeClock(), width=320, height=240, blank=dark)
    camera.show(LABEL)

    assert camera.read(1.0).shape == (240, 320)
    camera.clear()
    assert np.array_equal(camera.read(1.0), dark)


def test_counted_show_is_exact_across_reader_threads() -> None:
    camera = SceneCamera(fps=None)
    camera.start()
    code = camera.rendered(LABEL)
    camera.show(LABEL, frames=500)
    counts = [0, 0]
    foreign: list[Frame] = []

    def reader(slot: int) -> None:
        for _ in range(600):
            frame = camera.read(1.0)
            if frame is code:
                counts[slot] += 1
            elif frame is not camera.blank:
                foreign.append(frame)

    threads = [threading.Thread(target=reader, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(counts) == 500
    assert foreign == []
    assert camera.frames_served == 1200


def test_show_and_clear_from_another_thread_never_serve_a_foreign_view() -> None:
    camera = SceneCamera(fps=None)
    camera.start()
    views = {id(camera.blank), id(camera.rendered(LABEL)), id(camera.rendered(PASS))}
    done = threading.Event()
    cycles = [0]
    seen: set[int] = set()

    def stager() -> None:
        while not done.is_set():
            camera.show(LABEL)
            camera.show(PASS, frames=3)
            camera.clear()
            cycles[0] += 1

    thread = threading.Thread(target=stager)
    thread.start()
    try:
        reads = 0
        # Keep reading until the stager has really run alongside the reads.
        while reads < 3000 or cycles[0] < 100:
            seen.add(id(camera.read(1.0)))
            reads += 1
    finally:
        done.set()
        thread.join()

    assert seen <= views


# --- PiCamera off a Pi ---------------------------------------------------------------


def test_pi_camera_without_picamera2_is_a_camera_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forced, so the test means the same on a Pi that has picamera2 installed.
    monkeypatch.setitem(sys.modules, "picamera2", None)
    camera: Camera = PiCamera()

    with pytest.raises(CameraError, match="not started"):
        camera.read(1.0)
    with pytest.raises(CameraError, match="picamera2 is not available"):
        camera.start()
    camera.stop()
