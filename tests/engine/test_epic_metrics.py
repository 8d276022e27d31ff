"""EPIC-100 action recognition metrics on a hand-worked set of six segments (EPIC's shapes: 97 verbs,
300 nouns), every metric checked, in both published results formats, and the inputs refused."""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch

from fpar.engine import epic_metrics as epic
from fpar.errors import FparError

# (narration id, participant, verb class, noun class)
SEGMENTS = [
    ("P01_01_0", "P99", 0, 0),
    ("P01_01_1", "P01", 1, 2),
    ("P99_02_0", "P99", 5, 7),
    ("P99_02_1", "P99", 1, 0),
    ("P02_03_0", "P02", 50, 7),
    ("P03_04_0", "P03", 5, 4),
]
TAIL_VERBS, TAIL_NOUNS, UNSEEN = {0, 5}, {7}, {"P99"}


def hand_scores() -> tuple[np.ndarray, np.ndarray]:
    """A background of distinct scores (class j: -10 - 0.01 j, so class 0 leads it), then per segment:

    1. verb 0 = 5, noun 0 = 5: verb, noun and action right at 1.
    2. verb 3 = 4 > verb 1 = 3 (label): verb right at 5 only; noun 2 = 5 right; action (3,2)=9 > (1,2)=8: 2nd.
    3. verb 5 = 6 right; nouns 9 = 3 > 8 = 2 > 7 = 1 (label): noun and action 3rd.
    4. the softmax case. verbs 0 = 2 > 1 = 1 (label); nouns 0 = 2 (label) > 1 = 1.5 > 2 = 1.2 > 3 = 1.1.
       Softmax products rank pairs by verb + noun score: (0,0) 4, (0,1) 3.5, (0,2) 3.2, (0,3) 3.1,
       (1,0) 3.0: the action is 5th, a top-5 hit. Raw products would put the background pairs first
       ((-10.02) x (-10.04) > 100) and miss it.
    5. verb 7 = 5 > background, label verb 50 is 51st: wrong at 5; noun 7 = 5 right; action wrong.
    6. verb 6 = 5 > verb 5 = 4 (label); noun 4 = 5 right; action (6,4)=10 > (5,4)=9: 2nd.
    """
    verb = np.tile(-10.0 - 0.01 * np.arange(epic.EPIC_VERBS), (len(SEGMENTS), 1))
    noun = np.tile(-10.0 - 0.01 * np.arange(epic.EPIC_NOUNS), (len(SEGMENTS), 1))
    verb[0, 0], noun[0, 0] = 5, 5
    verb[1, 3], verb[1, 1], noun[1, 2] = 4, 3, 5
    verb[2, 5], noun[2, 9], noun[2, 8], noun[2, 7] = 6, 3, 2, 1
    verb[3, 0], verb[3, 1] = 2, 1
    noun[3, 0], noun[3, 1], noun[3, 2], noun[3, 3] = 2, 1.5, 1.2, 1.1
    verb[4, 7], noun[4, 7] = 5, 5
    verb[5, 6], verb[5, 5], noun[5, 4] = 5, 4, 5
    return verb, noun


EXPECTED = {
    "all_verb_accuracy_at_1": 100 * 2 / 6,     # segments 1, 3
    "all_verb_accuracy_at_5": 100 * 5 / 6,     # all but 5
    "all_noun_accuracy_at_1": 100 * 5 / 6,     # all but 3
    "all_noun_accuracy_at_5": 100.0,
    "all_action_accuracy_at_1": 100 * 1 / 6,   # segment 1
    "all_action_accuracy_at_5": 100 * 5 / 6,   # all but 5 (4 only through the softmax)
    "tail_verb_accuracy_at_1": 100 * 2 / 3,    # tail verbs 0, 5: segments 1, 3 right, 6 wrong
    "tail_noun_accuracy_at_1": 100 * 1 / 2,    # tail noun 7: segment 3 wrong, 5 right
    "tail_action_accuracy_at_1": 100 * 1 / 4,  # verb or noun tail: 1, 3, 5, 6; only 1 right
    "unseen_verb_accuracy_at_1": 100 * 2 / 3,  # P99: segments 1, 3, 4
    "unseen_noun_accuracy_at_1": 100 * 2 / 3,
    "unseen_action_accuracy_at_1": 100 * 1 / 3,
}


def write_annotations(folder):
    labels = folder / "EPIC_100_validation.csv"
    labels.write_text("narration_id,participant_id,video_id,narration,verb,verb_class,noun,noun_class\n" + "".join(
        f"{nid},{pid},{nid.rsplit('_', 1)[0]},do it,do,{v},it,{n}\n" for nid, pid, v, n in SEGMENTS))
    (folder / "tail_verbs.csv").write_text("verb,key,instances\n" + "".join(f"{v},v{v},3\n" for v in TAIL_VERBS))
    (folder / "tail_nouns.csv").write_text("noun,key,instances\n" + "".join(f"{n},n{n},2\n" for n in TAIL_NOUNS))
    (folder / "unseen.csv").write_text("participant_id\n" + "".join(f"{p}\n" for p in UNSEEN))
    return [f"--labels={labels}", f"--tail-verbs={folder / 'tail_verbs.csv'}",
            f"--tail-nouns={folder / 'tail_nouns.csv'}", f"--unseen={folder / 'unseen.csv'}"]


def labels() -> epic.Labels:
    return epic.Labels([s[0] for s in SEGMENTS], [s[1] for s in SEGMENTS], np.array([s[2] for s in SEGMENTS]),
                       np.array([s[3] for s in SEGMENTS]))


def test_every_metric_matches_the_hand_worked_answers():
    verb, noun = hand_scores()
    results = epic.Results([s[0] for s in SEGMENTS][::-1], verb[::-1].copy(), noun[::-1].copy())  # matched by id
    metrics = epic.epic_metrics(labels(), results, tail_verbs=TAIL_VERBS, tail_nouns=TAIL_NOUNS,
                                unseen_participants=UNSEEN)
    assert list(metrics) == list(epic.METRIC_NAMES)
    assert metrics == pytest.approx(EXPECTED)


def test_the_softmax_over_the_top_100_decides_segment_4():
    verb, noun = hand_scores()
    verbs, nouns = epic.action_top_k(verb[3:4], noun[3:4], k=6)
    assert list(zip(verbs[0].tolist(), nouns[0].tolist())) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    raw = verb[3][:, None] * noun[3][None, :]  # what multiplying raw scores would rank
    raw_top5 = np.argsort(-raw.ravel())[:5]
    assert 1 * epic.EPIC_NOUNS + 0 not in raw_top5


def test_score_epic_reads_both_formats_and_prints_the_metrics(tmp_path, capsys):
    from fpar.cli import main

    args = write_annotations(tmp_path)
    verb, noun = hand_scores()
    ids = [s[0] for s in SEGMENTS]
    as_list = tmp_path / "list_format.pt"
    torch.save([{"verb_output": torch.tensor(v, dtype=torch.float32), "noun_output": n.astype(np.float32),
                 "narration_id": i} for v, n, i in zip(verb, noun, ids)], as_list)
    as_npz = tmp_path / "dict_format.npz"
    np.savez(as_npz, verb_output=verb, noun_output=noun, narration_id=np.array(ids))
    for path in (as_list, as_npz):
        assert main(["score-epic", str(path), *args, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == pytest.approx(EXPECTED, abs=1e-4)  # float32 scores
    assert main(["score-epic", str(as_npz), *args]) == 0
    table = capsys.readouterr().out
    assert "all          33.33   83.33   83.33  100.00     16.67     83.33" in table, table


def test_results_that_do_not_fit_are_one_line_and_no_numbers(tmp_path, capsys):
    from fpar.cli import main

    args = write_annotations(tmp_path)
    verb, noun = hand_scores()
    ids = [s[0] for s in SEGMENTS]

    class Exploit:
        def __reduce__(self):
            return (print, ("ran code",))

    cases = {
        "missing": ({"verb_output": verb[:5], "noun_output": noun[:5], "narration_id": ids[:5]},
                    "1 narration id(s) of the labels have no result (P03_04_0)"),
        "extra": ({"verb_output": np.vstack([verb, verb[:1]]), "noun_output": np.vstack([noun, noun[:1]]),
                   "narration_id": [*ids, "P09_01_0"]}, "have a narration id the labels lack (P09_01_0)"),
        "shape": ({"verb_output": verb[:, :96], "noun_output": noun, "narration_id": ids},
                  "verb_output has shape [6, 96], expected [6, 97]"),
        "nan": ({"verb_output": verb, "noun_output": np.where(np.arange(300) == 3, np.nan, noun), "narration_id": ids},
                "noun_output is not finite (NaN or infinite) for narration id P01_01_0"),
        "code": ({"verb_output": verb, "noun_output": noun, "narration_id": ids, "x": Exploit()},
                 "refusing to load"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(content, path)
        assert main(["score-epic", str(path), *args]) == 1, name
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and message in err, (name, err)


def test_submission_json_has_the_challenge_fields(tmp_path):
    verb, noun = hand_scores()
    ids = [s[0] for s in SEGMENTS]
    sub = epic.submission(epic.Results(ids, verb, noun), sls_pt=2, sls_tl=3, sls_td=4)
    assert {k: sub[k] for k in ("version", "challenge", "sls_pt", "sls_tl", "sls_td")} == \
        {"version": "0.2", "challenge": "action_recognition", "sls_pt": 2, "sls_tl": 3, "sls_td": 4}
    assert list(sub["results"]) == ids
    first = sub["results"]["P01_01_0"]
    assert list(first["verb"]) == [str(c) for c in range(97)] and len(first["noun"]) == 300
    assert first["verb"]["0"] == 5.0 and first["noun"]["299"] == pytest.approx(-12.99)
    epic.write_submission(tmp_path / "test.json", epic.Results(ids, verb, noun), sls_pt=2, sls_tl=3, sls_td=4)
    assert json.loads((tmp_path / "test.json").read_text()) == sub
    with pytest.raises(FparError, match="sls_tl must be a supervision level from 0 to 5"):
        epic.submission(epic.Results(ids, verb, noun), sls_pt=2, sls_tl=6, sls_td=4)


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_written_results_read_back(tmp_path, suffix):
    verb, noun = hand_scores()
    ids = [s[0] for s in SEGMENTS]
    epic.write_results(tmp_path / f"results{suffix}", epic.Results(ids, verb, noun))
    back = epic.read_results(tmp_path / f"results{suffix}")
    assert back.narration_id == ids
    assert np.allclose(back.verb, verb, atol=1e-5) and np.allclose(back.noun, noun, atol=1e-5)


def test_files_that_are_no_results_are_named_for_what_they_are(tmp_path, capsys):
    from fpar.cli import main

    args = write_annotations(tmp_path)
    verb, noun = hand_scores()
    ids = [s[0] for s in SEGMENTS]
    (tmp_path / "plain.pt").write_text(json.dumps({"verb_output": verb.tolist(), "narration_id": ids}))
    (tmp_path / "random.pt").write_bytes(bytes(range(7, 250)) * 3)
    np.save(tmp_path / "scores.npy", verb)
    torch.save({"verb_output": torch.tensor(verb, dtype=torch.complex64), "noun_output": noun, "narration_id": ids},
               tmp_path / "complex.pt")
    torch.save({"verb_output": verb > 0, "noun_output": noun, "narration_id": ids}, tmp_path / "bool.pt")
    cases = {"plain.pt": "is text (JSON?), not a results file", "random.pt": "is not a results file",
             "scores.npy": "is a single .npy array, not a results file",
             "complex.pt": "verb_output: scores of type complex64 (complex); expected real numbers",
             "bool.pt": "verb_output: scores of type bool (true/false); expected real numbers"}
    for name, message in cases.items():
        assert main(["score-epic", str(tmp_path / name), *args]) == 1, name
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and message in err and "could run code" not in err, (name, err)
