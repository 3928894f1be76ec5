from __future__ import annotations

import pytest

from pipeline.bundled import word_error_rate


@pytest.mark.parametrize(
    ("ref", "hyp", "wer"),
    [
        ("hello world this is a test", "hello world this is a test", 0.0),
        ("hello world this is a test", "whoa world this is a test", 1 / 6),
        ("bin blue at f two now", "bin blue at two now", 1 / 6),
        ("a b", "a x b y", 1.0),
        ("", "anything", 1.0),
    ],
)
def test_word_error_rate(ref, hyp, wer):
    assert word_error_rate(ref, hyp) == pytest.approx(wer)
