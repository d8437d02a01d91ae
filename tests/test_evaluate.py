"""Evaluation output details that a reader of the figures relies on."""

from __future__ import annotations


def test_panel_titles_keep_the_end_of_long_ids():
    """hippocampus_330 and hippocampus_331 cut to 14 characters both read "hippocampus_33"."""
    from plsearch.infer.evaluate import _short_id

    assert _short_id("hippocampus_330") == "hippocampus_330"
    long = ["patient_0001_study_7_slice_330", "patient_0001_study_7_slice_331"]
    short = [_short_id(n) for n in long]
    assert short[0] != short[1] and all(len(s) == 20 and s.endswith(n[-5:]) for s, n in zip(short, long))
