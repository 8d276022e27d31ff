"""``fpar score-epic``: EPIC-KITCHENS-100's action recognition metrics of a results file."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser(
        "score-epic", help="EPIC-KITCHENS-100 action recognition metrics (verb, noun, action; tail, unseen)",
        description="Score a results file as the EPIC-KITCHENS-100 action recognition challenge does: verb, noun "
                    "and action top-1/top-5 over all segments, top-1 over tail classes and unseen participants "
                    "(docs/protocols.md). RESULTS: .pt (a dict of verb_output [N, 97], noun_output [N, 300], "
                    "narration_id [N], or a list of one such dict per segment; loaded without running code) "
                    "or .npz (the dict format).")
    score.add_argument("results", metavar="RESULTS", help="results file (.pt or .npz)")
    score.add_argument("--labels", required=True, metavar="CSV", help="EPIC_100_validation.csv")
    score.add_argument("--tail-verbs", required=True, metavar="CSV", help="EPIC_100_tail_verbs.csv")
    score.add_argument("--tail-nouns", required=True, metavar="CSV", help="EPIC_100_tail_nouns.csv")
    score.add_argument("--unseen", required=True, metavar="CSV",
                       help="EPIC_100_unseen_participant_ids_validation.csv")
    score.add_argument("--json", action="store_true", help="print one JSON object (the challenge's metric names, in %%)")
    score.set_defaults(func=run_score_epic)


def run_score_epic(args: argparse.Namespace) -> int:
    from fpar.engine import epic_metrics as epic

    labels = epic.read_labels(args.labels)
    tail_verbs = epic.read_class_ids(args.tail_verbs, "verb")
    tail_nouns = epic.read_class_ids(args.tail_nouns, "noun")
    unseen = epic.read_participants(args.unseen)
    results = epic.read_results(args.results)
    metrics = epic.epic_metrics(labels, results, tail_verbs=tail_verbs, tail_nouns=tail_nouns,
                                unseen_participants=unseen)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"results   {args.results} ({len(labels.narration_id)} segments)")
    print(epic.format_metrics(metrics))
    return 0
