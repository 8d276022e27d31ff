"""An EPIC-KITCHENS-shaped tree written by the tests: the published frame layout and an annotation CSV
in EPIC-100's columns (docs/data.md, "In place and video sources"), and the tiny dataset with EPIC-like
narration names and verb/noun labels (:func:`epic_like_dataset`)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from fpar.data.labels import LABELS_FILE
from helpers.tiny import CLASSES, write_dataset

PARTICIPANTS = ("P01", "P02")
VIDEOS_PER_PARTICIPANT = 2
RGB_FRAMES = 40  # per video; flow has one frame per two RGB frames
ACTIONS = (("open", 3, "door", 8), ("take", 0, "cup", 13), ("wash", 2, "plate", 2))
# three segments per video, overlapping: many segments share one frame folder
SEGMENTS = ((1, 20), (9, 30), (21, 40))
EPIC_100_COLUMNS = ("narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                    "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
                    "noun_class", "all_nouns", "all_noun_classes")


def rgb_frame(video: int, number: int) -> np.ndarray:
    """A 64x48 RGB frame that names its video and frame number (channel 1: the number)."""
    ys, xs = np.mgrid[0:48, 0:64]
    return np.stack([xs * 3, np.full_like(xs, number), np.full_like(xs, 40 * video)], axis=-1).astype(np.uint8)


def flow_frame(number: int, axis: str) -> np.ndarray:
    """A flat flow image: level 100 + the flow frame number (u) or 160 - it (v)."""
    level = 100 + number if axis == "u" else 160 - number
    return np.full((48, 64), level, np.uint8)


def write_epic_tree(root: Path) -> Path:
    """ROOT/<P>/rgb_frames/<video>/frame_%010d.jpg, ROOT/<P>/flow_frames/<video>/{u,v}/frame_%010d.jpg and
    the annotations ROOT.parent/EPIC_100_train.csv (returned)."""
    rows = []
    video_index = 0
    for participant in PARTICIPANTS:
        for v in range(1, VIDEOS_PER_PARTICIPANT + 1):
            video_id = f"{participant}_{v:02d}"
            rgb = root / participant / "rgb_frames" / video_id
            rgb.mkdir(parents=True)
            for k in range(1, RGB_FRAMES + 1):
                cv2.imwrite(str(rgb / f"frame_{k:010d}.jpg"), rgb_frame(video_index, k)[:, :, ::-1])
            for axis in ("u", "v"):
                flow = root / participant / "flow_frames" / video_id / axis
                flow.mkdir(parents=True)
                for k in range(1, RGB_FRAMES // 2 + 1):
                    cv2.imwrite(str(flow / f"frame_{k:010d}.jpg"), flow_frame(k, axis))
            for s, (start, stop) in enumerate(SEGMENTS):
                verb, verb_class, noun, noun_class = ACTIONS[(s + v) % len(ACTIONS)]
                rows.append({"narration_id": f"{video_id}_{s}", "participant_id": participant, "video_id": video_id,
                             "narration_timestamp": "00:00:01.000", "start_timestamp": "00:00:01.000",
                             "stop_timestamp": "00:00:02.000", "start_frame": start, "stop_frame": stop,
                             "narration": f"{verb} {noun}", "verb": verb, "verb_class": verb_class, "noun": noun,
                             "noun_class": noun_class, "all_nouns": f"['{noun}']", "all_noun_classes": f"[{noun_class}]"})
            video_index += 1
    annotations = root.parent / "EPIC_100_train.csv"
    with open(annotations, "w", newline="") as handle:
        writer = csv.DictWriter(handle, EPIC_100_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return annotations


def write_epic_videos(root: Path) -> None:
    """ROOT/<P>/videos/<video>.MP4 (H.264 with B-frames): the same frames as :func:`write_epic_tree`'s folders."""
    import av

    video_index = 0
    for participant in PARTICIPANTS:
        for v in range(1, VIDEOS_PER_PARTICIPANT + 1):
            path = root / participant / "videos" / f"{participant}_{v:02d}.MP4"
            path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(path), "w", format="mp4") as container:
                stream = container.add_stream("libx264", rate=60)
                stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
                stream.options = {"g": "12", "bf": "2"}
                for k in range(1, RGB_FRAMES + 1):
                    frame = av.VideoFrame.from_ndarray(rgb_frame(video_index, k), format="rgb24")
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            video_index += 1


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every entry under ``root`` with its size and modification time: equal snapshots, nothing written."""
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


# the tiny dataset (helpers.tiny) as EPIC-like narrations: its classes read as verb_noun
VERBS = {"close": 3, "open": 4, "stir": 10}
NOUNS = {"red": 7, "green": 120, "blue": 299}
TREES = ("processed_frames", "flow_x_processed", "flow_y_processed")


def epic_like_dataset(root: Path) -> list[dict[str, str]]:
    """The tiny dataset with narration-like instance names (unique over the dataset, as EPIC's are)
    and its labels.csv; returns the segments (EPIC annotation rows)."""
    write_dataset(root)
    segments = []
    for subject_dir in sorted((root / TREES[0]).iterdir()):
        for class_dir in sorted(subject_dir.iterdir()):
            for inst in sorted(class_dir.iterdir()):
                narration = f"{subject_dir.name}_{CLASSES.index(class_dir.name)}_{inst.name}"
                for tree in TREES:
                    folder = root / tree / subject_dir.name / class_dir.name
                    (folder / inst.name).rename(folder / narration)
                verb, noun = class_dir.name.split("_")
                segments.append({"narration_id": narration, "participant_id": subject_dir.name,
                                 "verb": verb, "verb_class": VERBS[verb], "noun": noun, "noun_class": NOUNS[noun]})
    with (root / LABELS_FILE).open("w", newline="") as file:
        writer = csv.DictWriter(file, ["id", "verb", "verb_class", "noun", "noun_class"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "id": row["narration_id"]} for row in segments)
    return segments
