"""The embedded synthetic egocentric dataset: the default data every command can run on.

Written in the processed layout (docs/method.md §2) with RGB frames, quantised x/y flow and motion
maps. Each class is ``<verb>_<object>``:

* objects differ in colour and shape (an RGB model can tell them from one frame);
* verbs differ in motion, visible in *any* 5-frame flow stack of the clip and unchanged by the
  horizontal-flip augmentation (which mirrors left/right motion): ``open`` -- the lid rises,
  ``close`` -- the lid comes down, ``shake`` -- the object swings left and right, ``stir`` -- a
  spoon circles in the open object.

A hand (with its arm) does the acting; the camera jitters (ego-motion); static distractors lie on a
subject-specific table under subject-specific lighting (a mild domain shift between subjects).

Flow is the exact motion that was rendered (every layer moves by whole pixels between frames), so
it is true flow, quantised like dense_flow: clipped to ``±SYNTH_FLOW_BOUND`` px, mapped linearly onto
0..255, 128 = still. Motion maps mark the pixels whose own motion, camera motion removed, is
non-zero: what camera-compensated trajectories would find. Same arguments -> byte-identical files.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from fpar.data.frames import quantize_flow
from fpar.data.layouts import UNFINISHED_MARKER
from fpar.errors import FparError
from fpar.io import write_bytes, write_text
from fpar.progress import bar as progress_bar

VERBS = ("open", "close", "shake", "stir")
# name, RGB colour, body (width, height) and lid height at 160x120, shape. Sizes and lids differ
# as much as colours, so that the moving silhouettes in the flow also tell the objects apart.
OBJECTS = (
    ("jar", (200, 40, 40), (22, 38), 9, "rect"),
    ("box", (40, 80, 210), (48, 24), 4, "rect"),
    ("can", (40, 170, 60), (34, 30), 7, "round"),
    ("tub", (230, 200, 40), (42, 18), 5, "round"),
    ("bottle", (150, 50, 190), (14, 44), 11, "rect"),
)
# Neutral colours only: objects are the only saturated things in a scene.
TABLES = ((150, 140, 125), (125, 130, 135), (160, 150, 140), (135, 125, 115), (145, 145, 150), (120, 115, 110))
SKINS = ((224, 172, 140), (198, 145, 110), (170, 120, 90), (235, 190, 160))
DISTRACTORS = ((240, 240, 235), (60, 60, 60), (110, 80, 50), (180, 180, 175))
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
# The bound synthetic flow is coded with: not the models' FLOW_BOUND (fpar.data.frames) but a finer
# coding for motions of at most about 6 px per frame; the models read it as coded (docs/data.md)
SYNTH_FLOW_BOUND = 8.0
MARGIN = 8  # px of world beyond each frame edge, for the camera to wander into
BASE_HEIGHT = 120  # geometry above is given for 160x120 and scaled from there


def class_names(classes: int) -> list[str]:
    """The first ``classes`` classes: every verb with the first object, then the next object, ..."""
    if not 1 <= classes <= len(VERBS) * len(OBJECTS):
        raise FparError(f"classes must be between 1 and {len(VERBS) * len(OBJECTS)}, got {classes}")
    return [f"{VERBS[k % len(VERBS)]}_{OBJECTS[k // len(VERBS)][0]}" for k in range(classes)]


def generate(
    out: str | Path,
    subjects: int = 4,
    classes: int = 12,
    videos_per_class: int = 3,
    frames: int = 24,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    force: bool = False,
    progress: bool | None = False,
) -> Path:
    """Write the synthetic dataset under ``out`` (processed layout) and return ``out``.

    ``size`` is (width, height). ``force`` replaces an earlier dataset in ``out``. ``progress``: a
    bar on stderr (None: only when stderr is a terminal).
    """
    out = Path(out)
    names = class_names(classes)
    meta = {"generator": "fpar synth", "seed": seed, "subjects": subjects, "classes": names,
            "videos_per_class": videos_per_class, "frames": frames, "size": list(size), "flow_bound": SYNTH_FLOW_BOUND}
    _check_arguments(out, subjects, videos_per_class, frames, size, force, meta)
    # every video is drawn from its own seed: a rerun after a kill rewrites the same bytes
    write_text(out / UNFINISHED_MARKER, json.dumps(meta, indent=2) + "\n")
    bar = progress_bar(total=subjects * len(names) * videos_per_class, desc="synth", unit="video", progress=progress)
    for s in range(subjects):
        scene = _subject_scene(seed, s, size)
        for c, name in enumerate(names):
            for v in range(videos_per_class):
                rng = np.random.default_rng([seed, s, c, v])
                video = _render_video(scene, VERBS[c % len(VERBS)], OBJECTS[c // len(VERBS)], frames, rng)
                _write_video(out, f"S{s + 1}", name, str(v + 1), video)
                bar.update()
    bar.close()
    write_text(out / "synth.json", json.dumps(meta, indent=2) + "\n")
    (out / UNFINISHED_MARKER).unlink()
    return out


def _check_arguments(out: Path, subjects: int, videos: int, frames: int, size: tuple[int, int], force: bool,
                     meta: dict) -> None:
    if subjects < 1 or videos < 1:
        raise FparError("subjects and videos per class must be at least 1")
    if frames < 5:
        raise FparError(f"frames must be at least 5 (the flow stack), got {frames}")
    if min(size) < 32:
        raise FparError(f"size must be at least 32x32, got {size[0]}x{size[1]}")
    trees = [out / t for t in ("processed_frames", "flow_x_processed", "flow_y_processed")]
    if any(t.exists() for t in trees) or (out / UNFINISHED_MARKER).exists():
        if _unfinished(out) == meta and not force:
            return  # a killed synth with these settings: this run finishes it
        if not force:
            other = " (an unfinished synth with other settings)" if _unfinished(out) is not None else ""
            raise FparError(f"{out}: already holds a dataset{other} (force=True, fpar synth --force, replaces it)")
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)


def _unfinished(out: Path) -> dict | None:
    """The settings of an interrupted synth in ``out``, or None."""
    try:
        return json.loads((out / UNFINISHED_MARKER).read_text())
    except (OSError, ValueError):
        return None


# --- scene: what stays the same for every video of one subject --------------------------------


@dataclass
class _Scene:
    size: tuple[int, int]
    scale: float
    table: np.ndarray  # uint8 (H + 2*MARGIN, W + 2*MARGIN, 3), the world's background
    light: np.ndarray  # per-channel gain
    skin: tuple[int, int, int]


def _subject_scene(seed: int, subject: int, size: tuple[int, int]) -> _Scene:
    """A table with a smooth texture, a light tint and a skin tone, all particular to one subject."""
    rng = np.random.default_rng([seed, subject, 1_000_003])
    width, height = size
    world = (height + 2 * MARGIN, width + 2 * MARGIN)
    base = np.array(TABLES[subject % len(TABLES)], np.float32)
    # Grey blotches and faint grain: texture without colours that could pass for an object's.
    blotches = cv2.resize(rng.normal(0, 10, (6, 8)).astype(np.float32), world[::-1], interpolation=cv2.INTER_CUBIC)
    grain = 4 * np.sin(np.arange(world[0])[:, None] * rng.uniform(0.15, 0.4))
    table = np.clip(base + (blotches + grain)[..., None], 0, 255).astype(np.uint8)
    light = rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 3)
    return _Scene(size, height / BASE_HEIGHT, table, light.astype(np.float32), SKINS[subject % len(SKINS)])


# --- one video: layers with integer positions per frame ---------------------------------------


@dataclass
class _Layer:
    """A rigid part drawn at ``offsets[t]`` (x, y world px) in frame t; ``moving`` = its own motion."""

    draw: Callable[..., None]
    offsets: np.ndarray  # int (frames + 1, 2)
    moving: bool


def _render_video(scene: _Scene, verb: str, obj: tuple, frames: int, rng: np.random.Generator) -> dict[str, list]:
    layers = _layers(scene, verb, obj, frames, rng)
    camera = _camera_path(frames + 1, rng)
    video: dict[str, list] = {"rgb": [], "mmaps": [], "flow_x": [], "flow_y": []}
    for t in range(frames):
        rgb, labels = _compose(scene, layers, t)
        window = _window(camera[t], scene.size)
        video["rgb"].append(_light(rgb[window], scene.light))
        labels = labels[window]
        # Flow of a pixel: its layer's motion to frame t+1 minus the camera's (the view moves the other way).
        own = np.array([layer.offsets[t + 1] - layer.offsets[t] for layer in layers] + [(0, 0)])
        ego = camera[t + 1] - camera[t]
        flow_x, flow_y = quantize_flow(own[labels] - ego, SYNTH_FLOW_BOUND)
        video["flow_x"].append(flow_x)
        video["flow_y"].append(flow_y)
        moving = np.array([layer.moving and own[i].any() for i, layer in enumerate(layers)] + [False])
        video["mmaps"].append(np.where(moving[labels], 255, 0).astype(np.uint8))
    return video


def _layers(scene: _Scene, verb: str, obj: tuple, frames: int, rng: np.random.Generator) -> list[_Layer]:
    """The distractors, the object, its lid, the spoon and the hand, with a path for each."""
    s = scene.scale
    width, height = scene.size
    _, colour, (bw, bh), lid_h, shape = obj
    bw, bh = round(bw * s * rng.uniform(0.9, 1.1)), round(bh * s * rng.uniform(0.9, 1.1))
    base = np.array([MARGIN + width / 2 + rng.uniform(-18, 18) * s, MARGIN + height - rng.uniform(12, 20) * s])
    t = np.arange(frames + 1, dtype=np.float64)[:, None]
    still = np.zeros((frames + 1, 2)) + base
    lid_h = max(2, round(lid_h * s))
    body = partial(_draw_body, w=bw, h=bh, colour=colour, shape=shape)
    lid = partial(_draw_lid, w=bw + round(4 * s), h=lid_h, colour=tuple(int(c * 0.6) for c in colour), shape=shape)
    period = rng.uniform(7, 9)  # frames per swing or turn: any 5-frame flow stack shows both directions
    phase = rng.uniform(0, 2 * math.pi)
    side = 1 if rng.random() < 0.5 else -1  # which hand does it
    layers = _distractors(scene, base, bw, frames, rng)
    if verb in ("open", "close"):
        lift = 2.5 * s * rng.uniform(0.9, 1.1) * (t if verb == "open" else frames - t)
        lid_path = still - np.hstack([0 * t, bh + lift])
        layers += [_Layer(body, _path(still), False), _Layer(lid, _path(lid_path), True)]
        hand_path = lid_path + (side * (bw / 2 + 4 * s), -lid_h / 2)
    elif verb == "shake":
        swing = 6 * s * np.sin(2 * math.pi * t / period + phase)
        path = still + np.hstack([swing, 0 * t])
        layers += [_Layer(body, _path(path), True), _Layer(lid, _path(path - (0, bh)), True)]
        hand_path = path + (side * (bw / 2 + 4 * s), -bh / 2)
    else:  # stir: the lid lies beside the object while a spoon circles inside it
        # The circle spans a third of the object's width, at about 5 px per frame.
        radius = bw / 3
        angle = 2 * math.pi * t * 5 * s / (2 * math.pi * radius) + phase
        spoon_tip = still + (0, -bh + 4 * s) + radius * np.hstack([np.cos(angle), 0.5 * np.sin(angle)])
        spoon_h = round(26 * s)
        spoon = partial(_draw_rect, dx=-1, dy=-spoon_h, w=max(2, round(3 * s)), h=spoon_h, colour=(90, 90, 95))
        layers += [
            _Layer(lid, _path(still + (-side * (bw / 2 + 14 * s), lid_h)), False),
            _Layer(body, _path(still), False),
            _Layer(spoon, _path(spoon_tip), True),
        ]
        hand_path = spoon_tip + (0, -spoon_h)
    hand = partial(_draw_hand, scale=s, skin=scene.skin, side=side)
    return layers + [_Layer(hand, _path(hand_path), True)]


def _distractors(scene: _Scene, base: np.ndarray, bw: int, frames: int, rng: np.random.Generator) -> list[_Layer]:
    """Two still objects left and right of the action, in neutral colours."""
    s = scene.scale
    width, height = scene.size
    layers = []
    for side in (-1, 1):
        x = base[0] + side * rng.uniform(bw / 2 + 30 * s, bw / 2 + 55 * s)
        x = float(np.clip(x, MARGIN + 8 * s, MARGIN + width - 8 * s))
        where = np.zeros((frames + 1, 2)) + (x, MARGIN + rng.uniform(0.35, 0.75) * height)
        colour = DISTRACTORS[rng.integers(len(DISTRACTORS))]
        r = round(rng.uniform(5, 10) * s)
        if rng.random() < 0.5:
            draw = partial(_draw_ellipse, rx=r, ry=r, colour=colour)
        else:
            draw = partial(_draw_rect, dx=-r, dy=-r // 2, w=2 * r, h=r, colour=colour)
        layers.append(_Layer(draw, _path(where), False))
    return layers


def _path(points: np.ndarray) -> np.ndarray:
    # Whole pixels: the rendered motion is then exactly the difference of two rows.
    return np.rint(points).astype(np.int64)


def _camera_path(steps: int, rng: np.random.Generator) -> np.ndarray:
    """A jittery random walk of the view, one pixel at a time, kept inside the margin."""
    moves = rng.integers(-1, 2, size=(steps, 2))
    moves[0] = 0
    return np.clip(np.cumsum(moves, axis=0), -MARGIN + 1, MARGIN - 1)


def _window(camera: np.ndarray, size: tuple[int, int]) -> tuple[slice, slice]:
    x, y = MARGIN + camera
    return slice(y, y + size[1]), slice(x, x + size[0])


def _compose(scene: _Scene, layers: list[_Layer], t: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the world of frame t, back to front; ``labels`` holds the top layer of each pixel."""
    image = scene.table.copy()
    labels = np.full(image.shape[:2], len(layers), np.int32)  # the table: the last, still entry
    for i, layer in enumerate(layers):
        layer.draw(image, labels, layer.offsets[t], i)
    return image, labels


def _light(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


# --- drawing: a shape goes into the image and, as its layer index, into the label map --------
# Every draw function takes (image, labels, origin, index) and its own shape parameters.


def _draw_rect(image, labels, origin, index, *, dx, dy, w, h, colour) -> None:
    corners = (int(origin[0] + dx), int(origin[1] + dy)), (int(origin[0] + dx + w - 1), int(origin[1] + dy + h - 1))
    cv2.rectangle(image, *corners, colour, -1)
    cv2.rectangle(labels, *corners, index, -1)


def _draw_ellipse(image, labels, origin, index, *, rx, ry, colour, dx=0, dy=0) -> None:
    args = ((int(origin[0] + dx), int(origin[1] + dy)), (int(rx), int(ry)), 0, 0, 360)
    cv2.ellipse(image, *args, colour, -1)
    cv2.ellipse(labels, *args, index, -1)


def _draw_line(image, labels, origin, index, *, to, thickness, colour) -> None:
    ends = (int(origin[0]), int(origin[1])), (int(origin[0] + to[0]), int(origin[1] + to[1]))
    cv2.line(image, *ends, colour, thickness)
    cv2.line(labels, *ends, index, thickness)


def _draw_body(image, labels, origin, index, *, w, h, colour, shape) -> None:
    """The object, ``origin`` being the middle of its base: a box, or a pot with a lighter rim."""
    if shape == "rect":
        _draw_rect(image, labels, origin, index, dx=-(w // 2), dy=-h, w=w, h=h, colour=colour)
        return
    rim = h // 4
    _draw_rect(image, labels, origin, index, dx=-(w // 2), dy=-h + rim, w=w, h=h - rim, colour=colour)
    rim_colour = tuple(min(255, c + 40) for c in colour)
    _draw_ellipse(image, labels, origin, index, dy=-h + rim, rx=w // 2, ry=rim, colour=rim_colour)


def _draw_lid(image, labels, origin, index, *, w, h, colour, shape) -> None:
    """The lid, ``origin`` being the middle of its underside: flat on a box, domed on a pot."""
    if shape == "rect":
        _draw_rect(image, labels, origin, index, dx=-(w // 2), dy=-h, w=w, h=h, colour=colour)
    else:
        _draw_ellipse(image, labels, origin, index, dy=-(h // 2), rx=w // 2, ry=max(1, h // 2), colour=colour)


def _draw_hand(image, labels, origin, index, *, scale, skin, side) -> None:
    """A palm at ``origin`` with its arm reaching in from below the frame, as in first-person video."""
    arm = (side * 90 * scale, 110 * scale)
    _draw_line(image, labels, origin, index, to=arm, thickness=max(3, round(11 * scale)),
               colour=tuple(int(c * 0.85) for c in skin))
    _draw_ellipse(image, labels, origin, index, rx=round(9 * scale), ry=round(7 * scale), colour=skin)


def _write_video(out: Path, subject: str, class_name: str, instance: str, video: dict[str, list]) -> None:
    folders = {
        "rgb": out / "processed_frames" / subject / class_name / instance / "rgb",
        "mmaps": out / "processed_frames" / subject / class_name / instance / "mmaps",
        "flow_x": out / "flow_x_processed" / subject / class_name / instance,
        "flow_y": out / "flow_y_processed" / subject / class_name / instance,
    }
    names = {"rgb": "rgb{:04d}.png", "mmaps": "map{:04d}.png", "flow_x": "flow_x_{:05d}.png", "flow_y": "flow_y_{:05d}.png"}
    for kind, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        for k, image in enumerate(video[kind], 1):
            if kind == "rgb":
                image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, data = cv2.imencode(".png", image, PNG_PARAMS)
            if not ok:
                raise FparError(f"{folder / names[kind].format(k)}: PNG encoding failed")
            write_bytes(folder / names[kind].format(k), data.tobytes())
