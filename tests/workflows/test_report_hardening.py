"""``fpar report`` on odd inputs: a corrupt or odd metrics.json is one line, every value shown in
index.html is escaped, two reports into one folder are refused, a killed report's temporaries go."""

import shutil

import pytest

from fpar.cli import main
from fpar.errors import FparError
from fpar.io import output_lock
from fpar.workflows.report import html_page, table_columns, write_report

ODD_HISTORIES = {
    "not JSON": b"[{\"epoch\": 1,",
    "not UTF-8": b"[{\"epoch\": \xff}]",
    "a mapping": b"{\"epoch\": 1}",
    "rows of strings": b"[\"epoch\"]",
    "epoch a string": b"[{\"epoch\": \"<script>alert(1)</script>\", \"val_accuracy\": 0.5}]",
    "value a list": b"[{\"epoch\": 1, \"val_accuracy\": [1]}]",
    "no epoch": b"[{\"val_accuracy\": 0.5}]",
    "NaN": b"[{\"epoch\": 1, \"val_accuracy\": NaN}]",
    "deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained_run["best_ckpt"], run / "best.ckpt")
    return run


@pytest.mark.parametrize("kind", list(ODD_HISTORIES))
def test_an_odd_metrics_json_is_one_line_naming_it(run_copy, tiny_data, tmp_path, kind, capsys):
    (run_copy / "metrics.json").write_bytes(ODD_HISTORIES[kind])
    assert main(["report", str(run_copy), "--data", str(tiny_data), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.json" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "index.html").exists()


def test_every_value_shown_in_the_page_is_escaped():
    bad = "<script>alert(1)</script>"
    run = {"name": bad, "checkpoint": bad, "split": [bad], "n": 3, "epochs": bad, "best_epoch": bad,
           "accuracy": 0.5, "top5": 1.0, "mean_class_accuracy": 0.5, "per_class": {bad: 0.5},
           "pictures": {}, "explained": [], "selection": {"text": bad}, "config": {"experiment": bad, bad: [bad]}}
    for key, _, kind in table_columns():
        run.setdefault(key, 0.5 if kind == "percent" else bad)
    page = html_page([run, dict(run)], None)
    assert "<script" not in page and page.count("&lt;script&gt;") >= 10


def test_a_second_report_into_one_folder_is_refused_and_leftovers_are_removed(run_copy, tiny_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".index.html.k1ll3d.tmp").write_text("half")
    with output_lock(out, f"report {out}"):
        with pytest.raises(FparError, match="another process is writing it"):
            write_report(run_copy, tiny_data, out)
    assert (out / ".index.html.k1ll3d.tmp").exists()  # a running writer's temporaries are its own
    write_report(run_copy, tiny_data, out, clips=0)
    assert not list(out.glob(".*.tmp")) and (out / "index.html").is_file()


@pytest.mark.parametrize("where", ["the dataset", "a link planted as the folder"])
def test_a_report_never_writes_into_its_input_or_through_a_link(run_copy, tiny_data, tmp_path, where):
    out = tiny_data
    if where != "the dataset":
        out = tmp_path / "out"
        out.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FparError, match="inputs|symbolic link"):
        write_report(run_copy, tiny_data, out)
    assert not (tiny_data / "report.md").exists() and not (tmp_path / "elsewhere").exists()


def test_a_report_keeps_a_folder_it_did_not_write(run_copy, tiny_data, tmp_path, capsys):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    assert main(["report", str(run_copy), "--data", str(tiny_data), "--out", str(out), "--clips", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files that no fpar report wrote (index.html" in err
    assert (out / "index.html").read_text() == "my own page" and sorted(p.name for p in out.iterdir()) == ["index.html"]
    fresh = tmp_path / "report"  # a report folder of its own is replaced by the next report
    assert main(["report", str(run_copy), "--data", str(tiny_data), "--out", str(fresh), "--clips", "0"]) == 0
    assert main(["report", str(run_copy), "--data", str(tiny_data), "--out", str(fresh), "--clips", "0"]) == 0
