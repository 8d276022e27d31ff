"""Progress in a log or a pipe: one line per step, in words a reader can read (docs/cli.md)."""

import pytest

from fpar.progress import bar


@pytest.mark.parametrize("unit, steps, words", [("batch", 3, "3 batches"), ("clip", 2, "2 clips"),
                                                ("clip", 1, "1 clip"), ("frames", 4, "4 frames")])
def test_a_step_ends_in_one_line_naming_its_count(capsys, unit, steps, words):
    for _ in bar(range(steps), desc="scoring", unit=unit, progress=True):
        pass
    err = capsys.readouterr().err
    assert err.startswith(f"scoring: {words} in ") and err.count("\n") == 1 and "\r" not in err
