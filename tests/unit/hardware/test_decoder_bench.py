"""A short run of bench/decoders.py: the pipeline reads more than one zxing-cpp call, never wrongly.

Speed is measured by the bench itself (docs/benchmarks.md); this only keeps the bench
running and checks what it counts, so no timing is asserted here.
"""

from __future__ import annotations

import pytest

from bench.decoders import parse_args, report, run_benchmark


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
