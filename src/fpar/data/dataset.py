"""``ClipDataset``: instances -> tensors the models take (ARCHITECTURE.md, "Dataset item").

Randomness (training only) is reproducible:

* with ``seed`` set, item ``i`` of epoch ``e`` draws from ``numpy.random.default_rng([seed, e, i])``,
  whatever the worker, the order or a resume. Tell the dataset the epoch with
  :meth:`ClipDataset.set_epoch`, or index it with ``(i, e)`` pairs (a sampler can yield them;
  this also works with persistent workers, whose dataset copies never see ``set_epoch``);
* with ``seed=None``, draws come from torch's global generator, which DataLoader seeds per worker
  (``lightning.seed_everything(..., workers=True)`` makes that repeatable).

Per clip the draws are: the temporal start (flow stack or two-in-one pairs), then one
:class:`~fpar.data.transforms.TrainDraw` (flip, scale, corner) for every frame and modality.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from fpar.data import sampling, transforms
from fpar.data.frames import FrameCache, read_frame, requantize_flow_table
from fpar.data.labels import LABEL_KINDS, label_key
from fpar.data.layouts import Instance, VideoRange
from fpar.data.settings import ClipSettings
from fpar.data.transforms import VIEWS
from fpar.errors import FparError


class ClipDataset(Dataset):
    """Clips of ``instances`` read as ``settings`` (:class:`~fpar.data.settings.ClipSettings`, the
    model's input contract) say, as dicts with only the modalities asked for.

    ``frames`` (T,3,H,W) ImageNet-normalised; ``flow`` (2L,H,W) as x1,y1,x2,y2,... with
    ``flow_mode="stack"`` or (T,2,H,W) with ``"pairs"`` (two-in-one: RGB and motion maps then use
    the same frame numbers as the flow); ``mmaps`` (T,1,H,W) in [0,1]; ``label`` int64; ``id`` str.
    ``views="five"|"ten"`` (evaluation only) adds a leading view axis V to every tensor.
    ``labels``: {kind: class names} of the label kinds to return besides ``label`` (``verb``,
    ``noun``: ``label_verb``, ``label_noun``, numbered by position in the list; docs/data.md).
    ``cache``: a :class:`FrameCache`, ``True`` for a 1 GiB one, or None to decode every time.
    ``normalize=False``: every modality stays uint8 in the same layout (frames ``(T,3,H,W)``), for
    :func:`normalize_batch` to convert on the device, where it is cheap and the copy 4x smaller.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        settings: ClipSettings,
        *,
        train: bool = False,
        views: str = "center",
        seed: int | None = None,
        cache: FrameCache | bool | None = None,
        normalize: bool = True,
        labels: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if views not in VIEWS:
            raise FparError(f"views must be one of {', '.join(VIEWS)}, not {views!r}")
        if train and views != "center":
            raise FparError("multi-view crops are for evaluation only (train=False)")
        self.instances = list(instances)
        self.settings = settings
        self.modalities = tuple(settings.modalities)
        self.num_frames = settings.num_frames
        self.stack_size = settings.stack_size
        self.flow_mode = settings.flow_mode
        self.resize = settings.resize
        self.crop = settings.crop
        self.train = train
        self.views = views
        self.seed = seed
        self.epoch = 0
        self.cache = FrameCache() if cache is True else (cache if isinstance(cache, FrameCache) else None)
        self.normalize = normalize
        self.label_ids = _label_ids(self.instances, labels or {})

    store = None  # a FrameStore once use_store() is called: frames come from it, not the image files

    def __len__(self) -> int:
        return len(self.instances)

    def use_store(self, store) -> None:
        """Read frames from a :class:`~fpar.data.store.FrameStore`: the same tensors, much faster.

        Any source with the store's ``clip()``, ``resize``, ``kinds`` and ``path`` will do (the
        frames ``fpar predict`` decodes from a video are one)."""
        if store.resize != self.resize:
            raise FparError(f"store {store.path} holds frames resized to {store.resize}, "
                            f"the dataset wants {self.resize}")
        missing = sorted(set(self._files_needed()) - set(store.kinds))
        if missing:
            raise FparError(f"store {store.path} holds no {', '.join(missing)} frames")
        self.store = store

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random draws ``__getitem__`` makes (with ``seed`` set)."""
        self.epoch = epoch

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | str]:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        inst = self.instances[index]
        frame_numbers, draw = self.draws(index, epoch)
        item: dict[str, torch.Tensor | str] = {}
        if "frames" in self.modalities:
            rgb = self._load(inst, "rgb", frame_numbers["rgb"], draw)  # (V, T, h, w, 3)
            rgb = transforms.normalize_rgb(rgb) if self.normalize else np.moveaxis(rgb, -1, -3)
            item["frames"] = self._tensor(rgb)
        if "flow" in self.modalities:
            flow = self._flow(inst, frame_numbers["flow"], draw)
            item["flow"] = self._tensor(transforms.normalize_flow(flow) if self.normalize else flow)
        if "mmaps" in self.modalities:
            maps = self._load(inst, "mmaps", frame_numbers["rgb"], draw)  # (V, T, h, w)
            item["mmaps"] = self._tensor((transforms.scale_unit(maps) if self.normalize else maps)[:, :, None])
        item["label"] = torch.tensor(inst.class_id, dtype=torch.int64)
        for kind, ids in self.label_ids.items():
            item[label_key(kind)] = torch.tensor(ids[getattr(inst, kind)], dtype=torch.int64)
        item["id"] = inst.instance_id
        return item

    def frame_numbers(self, index: int, epoch: int | None = None) -> dict[str, list[int]]:
        """The 1-based frame numbers item ``index`` reads of each file kind (``rgb``, ``flow_x``,
        ``flow_y``, ``mmaps``; only the kinds its modalities read): what a reader that decodes a
        video on demand must provide. Evaluation clips only (training ones are random per draw)."""
        if self.train:
            raise FparError("frame numbers are fixed for evaluation clips only (train=False)")
        numbers = self._frame_numbers(self.instances[index], self._rng(index, self.epoch if epoch is None else epoch))
        return sampling.numbers_per_kind(numbers, self.modalities)

    def draws(self, index: int, epoch: int) -> tuple[dict[str, list[int]], transforms.TrainDraw | None]:
        """The random choices item ``(index, epoch)`` is read with: its 1-based frame numbers (``rgb``
        for RGB and motion maps, ``flow`` for flow) and, in training, its flip, scale and corner. With
        ``seed`` set these are the item's draws, so a reader of its own (``fpar bench``'s reference
        loading) reads the same clips."""
        rng = self._rng(index, epoch)
        numbers = self._frame_numbers(self.instances[index], rng)
        return numbers, transforms.draw_train(rng) if self.train else None

    # --- sampling ------------------------------------------------------------------------------

    def _rng(self, index: int, epoch: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([self.seed, epoch, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def _frame_numbers(self, inst: Instance, rng: np.random.Generator) -> dict[str, list[int]]:
        """1-based frame numbers for RGB/motion maps (``rgb``) and for flow (``flow``): the rule of
        :func:`fpar.data.sampling.clip_numbers` over the instance's frame counts."""
        if "flow" in self.modalities and self.flow_mode == "pairs" and inst.flow_stride > 1:
            # flow at its own rate: pick flow frames, RGB where each starts
            numbers = sampling.clip_numbers(self.settings, {"flow_x": len(_frames_of(inst, "flow_x"))}, self.train, rng)
            return {"rgb": inst.rgb_numbers_of_flow(numbers["flow"]), "flow": numbers["flow"]}
        counts = {kind: len(_frames_of(inst, kind)) for kind in self._files_needed()}
        if "flow" in self.modalities and self.flow_mode == "stack" and counts["flow_x"] < self.stack_size:
            raise FparError(f"{inst.instance_id}: {counts['flow_x']} flow frames, fewer than the stack of "
                            f"{self.stack_size}")
        return sampling.clip_numbers(self.settings, counts, self.train, rng)

    def _files_needed(self) -> list[str]:
        return sampling.file_kinds(self.modalities)

    # --- loading and transforms ----------------------------------------------------------------

    def _flow(self, inst: Instance, numbers: list[int], draw: transforms.TrainDraw | None) -> np.ndarray:
        """uint8 flow as ``(V, 2L, h, w)`` (stack, x1,y1,x2,y2,...) or ``(V, T, 2, h, w)`` (pairs)."""
        fx = self._load(inst, "flow_x", numbers, draw)
        fy = self._load(inst, "flow_y", numbers, draw)
        if fx.shape != fy.shape:  # x and y of one flow field: one size, or they cannot be paired
            raise FparError(f"instance {inst.instance_id}: its flow_x frames ({_frames_of(inst, 'flow_x')[0]}) "
                            f"and flow_y frames ({_frames_of(inst, 'flow_y')[0]}) differ in size")
        pairs = np.stack([fx, fy], axis=2)  # (V, T, 2, h, w)
        if self.flow_mode == "stack":
            pairs = pairs.reshape(pairs.shape[0], -1, *pairs.shape[3:])
        return pairs

    def _load(
        self, inst: Instance, kind: str, numbers: list[int], draw: transforms.TrainDraw | None
    ) -> np.ndarray:
        """Frames ``numbers`` of one file kind, transformed: uint8 ``(V, T, h, w[, 3])``."""
        if self.store is not None:
            return self.store.clip(inst, kind, numbers, draw, self.crop, self.views)
        files = _frames_of(inst, kind)
        decoded = self._read_video(inst, files, numbers) if isinstance(files, VideoRange) else None
        views = []
        size = None
        for at, k in enumerate(numbers):
            image = decoded[at] if decoded is not None else self._read(inst, files, k, color=kind == "rgb")
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                self._refuse_mixed_sizes(inst, files, numbers, kind)
            image = transforms.resize_short(image, self.resize)
            if draw is not None:
                views.append([transforms.train_crop(image, draw, self.crop, is_flow_x=kind == "flow_x")])
            else:
                views.append(transforms.eval_views(image, self.crop, self.views, is_flow_x=kind == "flow_x"))
        return np.stack([np.stack(v) for v in zip(*views)])

    def _refuse_mixed_sizes(self, inst: Instance, files: tuple, numbers: list[int], kind: str) -> None:
        """A clip whose frames differ in size would be rescaled frame by frame into a clip that
        looks whole (``fpar data check`` reports such a frame): refuse it, naming the odd file.
        The instance's first frame gives the size the others must have."""
        color = kind == "rgb"
        expected = self._read(inst, files, 1, color).shape[:2]
        for k in numbers:
            shape = self._read(inst, files, k, color).shape[:2]
            if shape != expected:
                raise FparError(f"instance {inst.instance_id}: {files[k - 1]}: frame is {shape[1]}x{shape[0]}, "
                                f"the instance's others {expected[1]}x{expected[0]} (frames of one instance "
                                "must share one size)")

    def _read(self, inst: Instance, files: tuple, number: int, color: bool) -> np.ndarray:
        if not 1 <= number <= len(files):
            raise FparError(f"{inst.instance_id}: frame {number} requested but the instance has {len(files)}")
        if isinstance(files, VideoRange):  # one frame of a video (the size check's reference frame)
            return self._read_video(inst, files, [number])[0]
        try:
            if self.cache is not None:
                image = self.cache.read(files[number - 1], color)
            else:
                image = read_frame(files[number - 1], color)
        except FparError as exc:
            raise FparError(f"instance {inst.instance_id}: {exc}") from None
        if inst.flow_bound is not None and (files is inst.flow_x or files is inst.flow_y):
            # flow quantised with the dataset's own bound, read in fpar's (docs/data.md, "In place")
            image = requantize_flow_table(inst.flow_bound)[image]
        return image

    def _read_video(self, inst: Instance, files: VideoRange, numbers: list[int]) -> list[np.ndarray]:
        """Frames ``numbers`` (the instance's, 1-based) decoded from its video: only those."""
        from fpar.data.videos import read_video_frames  # noqa: PLC0415 (PyAV loads for video sources only)

        for number in numbers:
            if not 1 <= number <= len(files):
                raise FparError(f"{inst.instance_id}: frame {number} requested but the instance has {len(files)}")
        try:
            return read_video_frames(files.video, [files.first + k - 1 for k in numbers])
        except FparError as exc:
            raise FparError(f"instance {inst.instance_id}: {exc}") from None

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        # The view axis exists only for multi-view evaluation.
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor if self.views != "center" else tensor[0]


def _label_ids(instances: Sequence[Instance], labels: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    """Per label kind asked for (``verb``: its class names, position = id), name -> id; every
    instance must carry a label the list knows."""
    unknown = sorted(set(labels) - set(LABEL_KINDS))
    if unknown:
        raise FparError(f"unknown label kind {', '.join(unknown)} (choose from {', '.join(LABEL_KINDS)})")
    ids = {kind: {name: i for i, name in enumerate(names)} for kind, names in labels.items()}
    for kind, known in ids.items():
        for inst in instances:
            name = getattr(inst, kind)
            if name not in known:
                raise FparError(f"instance {inst.instance_id}: " + (
                    f"no {kind} label (docs/data.md, \"Verb and noun labels\")" if name is None else
                    f"{kind} {name!r} is not one of the model's {len(known)} {kind} classes"))
    return ids


def _frames_of(inst: Instance, kind: str) -> tuple:
    files = inst.frames(kind)
    if not files:
        raise FparError(f"instance {inst.instance_id}: no {kind} frames")
    return files


def normalize_batch(batch: dict) -> dict:
    """Convert the uint8 modalities of a batch (or item) read with ``normalize=False`` as the dataset
    would have: frames with the ImageNet mean/std, flow with its scalar mean/std, motion maps to
    [0, 1], in float32, on whatever device they are. The same float32 arithmetic as the dataset's
    tables, so the results equal the CPU path's to within float rounding."""
    out = dict(batch)
    for key in ("frames", "flow", "mmaps"):
        value = batch.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
            continue
        scaled = value.to(torch.float32) / 255.0
        if key == "frames":  # per channel: the channel axis is third from the end
            mean = torch.from_numpy(transforms.RGB_MEAN).to(value.device).view(3, 1, 1)
            std = torch.from_numpy(transforms.RGB_STD).to(value.device).view(3, 1, 1)
            scaled = (scaled - mean) / std
        elif key == "flow":
            scaled = (scaled - transforms.FLOW_MEAN) / transforms.FLOW_STD
        out[key] = scaled
    return out
