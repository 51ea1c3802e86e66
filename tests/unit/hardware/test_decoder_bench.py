"""A short run of bench/decoders.py: the pipeline reads more than one zxing-cpp call, never wrongly.

Speed is measured by the bench itself (docs/benchmarks.md); this only keeps the bench
running and checks what it counts, so no timing is asserted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bench.decoders import parse_args, photo_rows, report, run_benchmark
from hardware.synthetic import render_code

LABEL = "CS1.L.K1.DRILL-01.1.ABCDEFGHIJKLMNOPQRSTUVWX"


@pytest.mark.slow
def test_the_pipeline_reads_more_of_the_corpus_than_one_zxing_call_and_nothing_wrong() -> None:
    sizes = ["--frames", "40", "--no-code", "60", "--non-qr", "6", "--textures", "20"]
    args = parse_args([*sizes, "--ablation", "0", "--decoders", "zxing-cpp:plain,zxing-cpp"])

    run = run_benchmark(args)

    plain, pipeline = run.tallies
    assert (plain.spec, pipeline.spec) == ("zxing-cpp:plain", "zxing-cpp")
    assert sum(pipeline.frame_hits) > sum(plain.frame_hits)
    assert sum(pipeline.sample_hits) >= sum(plain.sample_hits)
    # Every frame the old decoder read, the pipeline reads too: its first look is the same.
    assert all(p for p, old in zip(pipeline.frame_hits, plain.frame_hits, strict=True) if old)
    for tally in run.tallies:
        assert tally.misreads == 0
        assert tally.errors == 0
        assert not tally.false_reads
        assert not tally.non_qr_reads
    assert pipeline.attempts["closer"] > 0
    text = report(run, [])
    assert "≥ 97 % from 1 frame" in text
    assert "`zxing-cpp` read its" in text


def test_the_photo_mode_counts_each_way_of_reading_a_directory_of_images(tmp_path: Path) -> None:
    # Two "photos" in zxing-cpp's sample layout: a small code only the full frame reads at
    # the kiosk's scale, and an image whose text does not match what it shows.
    small = render_code(LABEL, width=1728, height=1296, module_px=3, angle=20.0)
    Image.fromarray(small).save(tmp_path / "small.png")
    (tmp_path / "small.txt").write_text(LABEL, encoding="utf-8")
    Image.fromarray(render_code(LABEL)).save(tmp_path / "other.png")
    (tmp_path / "other.txt").write_text("SOMETHING ELSE", encoding="utf-8")
    (tmp_path / "no-text.png").write_bytes((tmp_path / "other.png").read_bytes())

    rows = {how: (read, photos) for how, read, photos in photo_rows(tmp_path, 1.0)}

    assert rows["one zxing-cpp call on the photo"] == (1, 2)
    assert rows["one zxing-cpp call on the photo at 1/2.7 (before)"] == (0, 2)
    assert rows["the pipeline at 1/2.7 with the photo as full frame (after)"] == (1, 2)
