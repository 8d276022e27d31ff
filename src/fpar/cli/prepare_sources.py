"""What ``fpar prepare`` reads from the command line's sources: the jobs of VIDEO arguments, a
manifest, a tree or a dataset's annotations (EGTEA Gaze+, EPIC-KITCHENS-100), the in-place manifest
of ``--frames`` / ``--in-place``, and the labels and splits written beside an import."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from fpar.data.layouts import MANIFEST_LAYOUT
from fpar.errors import FparError


def refuse_other_layout(out: str, layout: str) -> None:
    """A dataset root holds one layout: writing another beside it would leave one of the two unread
    (``auto`` picks one; docs/data.md), so an OUT that holds another layout is refused."""
    from fpar.data.layouts import detect_layout
    from fpar.errors import NotADatasetError

    if not Path(out).is_dir():
        return
    try:
        found = detect_layout(Path(out))
    except NotADatasetError:
        return
    if found != layout:
        raise FparError(f"--out {out} holds a dataset of the {found} layout; this import writes the {layout} "
                        "layout, which would not be read beside it: give another --out")


def refuse_empty_import(args: argparse.Namespace, imported: int, problems: list[str]) -> None:
    """An annotation file none of whose rows can be imported writes nothing (no manifest of no row)."""
    if imported == 0:
        source = ", ".join(args.epic) if args.epic else args.egtea  # --epic takes several CSVs
        why = f"{len(problems)} refused (listed above)" if problems else "it has none"
        raise FparError(f"{source}: no row to import ({why}); nothing written")


def write_labels(args: argparse.Namespace, ids: set[str]) -> None:
    """EPIC's and EGTEA's verb and noun classes of the imported ``ids``, merged into ``OUT/labels.csv``
    (docs/data.md): a refused row's labels are not written either."""
    from fpar.data.labels import LABELS_FILE, add_labels
    from fpar.io import inside
    from fpar.prepare import importers

    if args.epic:
        rows = [row for csv_path in args.epic for row in importers.epic_labels(csv_path)]
    elif args.egtea:
        rows = [row for split in _egtea_split_files(args.egtea) for row in importers.egtea_labels(
            split, split.with_name("verb_idx.txt"), split.with_name("noun_idx.txt"))]
    else:
        return
    rows = [row for row in rows if row["id"] in ids]
    if rows:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        add_labels(inside(args.out, LABELS_FILE), rows)


def annotation_jobs(args: argparse.Namespace) -> tuple[list, list[str]]:
    """The jobs the arguments name, and the annotation lines that could not be used."""
    from fpar.prepare import importers
    from fpar.prepare.jobs import Job, read_manifest, tree_jobs

    listed = bool(args.videos)
    sources = [flag for flag, value in (("--manifest", args.manifest), ("--tree", args.tree), ("--egtea", args.egtea),
                                        ("--epic", args.epic)) if value]
    if listed == bool(sources):
        raise FparError("give either VIDEO arguments (with --subject and --class) or one of "
                        "--manifest, --tree, --egtea, --epic")
    if not listed and (args.subject or args.class_name or args.instance):
        raise FparError(f"--subject, --class and --instance go with VIDEO arguments, not {sources[0]}")
    if args.manifest:
        return read_manifest(args.manifest), []
    if args.tree:
        return tree_jobs(args.tree), []
    if args.egtea or args.epic:
        if not args.videos_dir:
            raise FparError(f"{sources[0]} needs --videos DIR (where the videos are)")
        if not Path(args.videos_dir).is_dir():
            raise FparError(f"--videos {args.videos_dir}: no such folder (where the videos are)")
        if args.egtea:
            jobs, problems, seen = [], [], set()
            for split in _egtea_split_files(args.egtea):  # a clip in several split files is one job
                found, trouble = importers.egtea_jobs(split, _egtea_actions(args), args.videos_dir)
                jobs += [job for job in found if job.key not in seen]
                seen.update(job.key for job in found)
                problems += trouble
            return jobs, problems
        jobs, problems = [], []
        for csv_path in args.epic:
            found, trouble = importers.epic_jobs(csv_path, args.videos_dir, args.epic_label)
            if len(args.epic) > 1:  # several splits in one dataset: the split is the subject
                found = [dataclasses.replace(job, subject=importers.epic_split_name(csv_path)) for job in found]
            jobs += found
            problems += trouble
        return jobs, problems
    if not (args.subject and args.class_name):
        raise FparError("VIDEO arguments need --subject and --class")
    if args.instance and len(args.videos) > 1:
        raise FparError("--instance names one instance; give one VIDEO or leave --instance out")
    stems = [Path(video).stem for video in args.videos]
    twice = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twice:
        raise FparError(f"videos with the same name would be one instance ({', '.join(twice)}); "
                        "prepare them in separate calls with --instance")
    for video in args.videos:  # all inputs checked before the first is prepared
        if not Path(video).exists():
            raise FparError(f"{video}: no such video file or folder")
    return [Job(video, args.subject, args.class_name, args.instance or Path(video).stem) for video in args.videos], []


def in_place_manifest(args: argparse.Namespace) -> int:
    """``--frames`` / ``--in-place``: the annotations as a manifest of frame ranges read where they are."""
    from fpar.prepare import importers

    flag = "--frames" if args.frames_dir else "--in-place"
    if not (args.epic or args.egtea) or args.videos:
        raise FparError(f"{flag} goes with --epic CSV or --egtea SPLIT (no VIDEO arguments)")
    if args.in_place and not args.videos_dir:
        raise FparError("--in-place needs --videos DIR (the videos whose frames the manifest names)")
    if args.frames_dir and args.videos_dir:
        raise FparError("give --frames DIR (frame folders) or --videos DIR --in-place (videos), not both")
    if args.shard or args.write_manifest:
        raise FparError(f"{flag} writes one manifest at once: --shard and --write-manifest do not apply")
    root = args.frames_dir or args.videos_dir
    if not Path(root).is_dir():
        raise FparError(f"{flag if args.frames_dir else '--videos'} {root}: no such folder (the dataset's "
                        f"{'frames' if args.frames_dir else 'videos'})")
    refuse_other_layout(args.out, MANIFEST_LAYOUT)  # before anything is read, so before a merge with it
    replaced, splits = 0, None
    if args.epic:
        rows, problems = [], []
        for csv_path in args.epic:
            found, trouble = importers.epic_manifest(csv_path, root, videos=args.in_place, label=args.epic_label)
            rows += found
            problems += trouble
        twice = _twice([row["id"] for row in rows])
        if twice:
            raise FparError(f"narration id {twice!r} is in more than one of {', '.join(args.epic)}: nothing written")
        imported = len(rows)  # before the merge: an import with no row of its own writes nothing
        rows, replaced = importers.merge_epic_rows(args.out, root, rows)
    else:
        rows, problems, splits = _egtea_rows(args, root)
        imported = len(rows)
    for line in problems:
        print(line, file=sys.stderr)
    refuse_empty_import(args, imported, problems)
    path = importers.write_in_place_manifest(rows, root, args.out)
    if splits:
        from fpar.data.splits import SPLITS_FILE
        from fpar.io import inside, write_text

        write_text(inside(args.out, SPLITS_FILE), json.dumps(splits, indent=1) + "\n")
    write_labels(args, {row["id"] for row in rows})  # beside the manifest, where the index looks for them
    what = "videos" if args.in_place else "frames"
    subjects = sorted({row["subject"] for row in rows})
    print(f"wrote {path}: {len(rows)} segments read in place ({what} under {root}; subjects "
          f"{', '.join(subjects[:6])}{', ...' if len(subjects) > 6 else ''})"
          + (f", {replaced} earlier rows replaced by their new import" if replaced else "")
          + (f", splits {', '.join(splits)} recorded" if splits else "")
          + f", {len(problems)} annotation problems")
    return 1 if problems else 0


def _twice(ids: list[str]) -> str | None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            return item
        seen.add(item)
    return None


def _egtea_split_files(source: str) -> list[Path]:
    """A split file, or the six ``train_splitN.txt`` / ``test_splitN.txt`` of an annotation folder."""
    folder = Path(source)
    if not folder.is_dir():
        return [folder]
    files = [folder / f"{side}_split{n}.txt" for n in (1, 2, 3) for side in ("train", "test")]
    lacking = [f.name for f in files if not f.is_file()]
    if lacking:
        raise FparError(f"{folder}: an EGTEA Gaze+ annotation folder holds train_split1..3.txt and "
                        f"test_split1..3.txt; {', '.join(lacking)} missing")
    return files


def _egtea_actions(args: argparse.Namespace) -> str:
    folder = Path(args.egtea)
    return args.actions or str(folder / "action_idx.txt" if folder.is_dir() else folder.with_name("action_idx.txt"))


def _egtea_rows(args: argparse.Namespace, root: str) -> tuple[list[dict[str, str]], list[str], dict | None]:
    """EGTEA manifest rows (every clip once), problems, and for an annotation folder its three splits
    as clip lists (``splits.json``: each split's train and test clips)."""
    from fpar.prepare import importers

    files = _egtea_split_files(args.egtea)
    rows: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    listed: dict[Path, list[str]] = {}
    for split in files:
        found, trouble = importers.egtea_manifest(split, _egtea_actions(args), root, videos=args.in_place)
        problems += trouble
        listed[split] = [row["id"] for row in found]
        for row in found:
            rows.setdefault(row["id"], row)
    if not Path(args.egtea).is_dir():
        return list(rows.values()), problems, None
    splits = {f"split{n}": {side: listed[Path(args.egtea) / f"{side}_split{n}.txt"] for side in ("train", "test")}
              for n in (1, 2, 3)}
    return list(rows.values()), problems, splits
