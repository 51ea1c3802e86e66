"""The pipeline's read rate on a small fixed sample of the decoder corpus, held to a floor.

The sample is the first 40 codes of bench/decoders.py's corpus (seed 1, a pool of 20
textures; item labels as `cs-admin labels` prints them by default), three consecutive
frames each, read with no time budget so the counts do not depend on the machine's load.
bench/decoders.py is the full measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.decoders import (
    CONSECUTIVE,
    full_noise,
    make_sample,
    make_textures,
    next_view,
    render_capture,
    scenery_of,
)
from central.tokens import KeyRing, TokenSigner
from hardware.pipeline import ScanPipeline

SAMPLES = 40
# What the pipeline reads of this sample today (docs/benchmarks.md, Decoders): a floor
# that only moves up. Lowering it needs a measured reason in the docs, not a shrug.
# The tag label (broker.labels.TAG) lifted it from 78 / 28 with the 24-a-page sheet.
FLOOR_FRAMES = 98  # of 120 frames
FLOOR_SAMPLES = 33  # of 40 samples, within 3 frames
# The bars: >= 97 % of frames from one frame, >= 99.5 % of samples within 3.
BAR_SINGLE = 0.97
BAR_TRIPLE = 0.995


@dataclass(frozen=True)
class Reads:
    frames: list[bool]
    samples: list[bool]


@pytest.fixture(scope="module")
def reads() -> Reads:
    signer = TokenSigner(KeyRing({"K1": b"k" * 32}, "K1"))
    scenery = scenery_of(make_textures(1, 20))
    noise = full_noise(1)
    pipeline = ScanPipeline(budget_s=60.0)
    frames: list[bool] = []
    samples: list[bool] = []
    for index in range(SAMPLES):
        sample, rng = make_sample(signer, scenery, 1, index)
        view = sample.view
        hit = False
        for step in range(CONSECUTIVE):
            if step:
                view = next_view(view, sample.card, rng)
            texts = pipeline.scan(render_capture(sample.card, sample.background, view, rng, noise))
            # Only the code shown: a wrong text would be a misread, never a read.
            assert set(texts) <= {sample.text}
            frames.append(sample.text in texts)
            hit = hit or frames[-1]
        samples.append(hit)
    return Reads(frames, samples)


@pytest.mark.slow
def test_the_pipeline_reads_at_least_what_it_read_when_last_measured(reads: Reads) -> None:
    assert sum(reads.frames) >= FLOOR_FRAMES
    assert sum(reads.samples) >= FLOOR_SAMPLES


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="bars missed: motion smear, fingers over a finder pattern, tilt with focus blur "
    "and passes at 45-60 cm (docs/benchmarks.md, Decoders); strict, so meeting them fails "
    "until this mark goes",
)
def test_the_pipeline_meets_the_read_bars_on_the_sample(reads: Reads) -> None:
    assert sum(reads.frames) >= BAR_SINGLE * len(reads.frames)
    assert sum(reads.samples) >= BAR_TRIPLE * len(reads.samples)
