"""What ``fpar`` printed, checked as the project promises it: one line on an error, no traceback."""


def one_line_error(capsys) -> str:
    """The one line `fpar` printed on stderr (and that it is one line with no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "Caught" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("fpar: error: "), err[-3000:]
    return lines[0]
