"""The dataset store: every frame packed once into a few large shard files, checked, memory-mapped.

Why: decoding a PNG and resizing it costs far more than cropping it, opening one file per frame
costs a system call or three (millions of files hit file-count limits), and an in-memory
:class:`~fpar.data.frames.FrameCache` is one private copy per DataLoader worker, capped, and lost
with the worker. The store packs the frames once (``fpar cache``) into shards that every worker
maps read-only, so the kernel's page cache holds one copy for all of them (and for every later
run), pages are read on demand, and a store larger than RAM works. Two codecs (docs/data.md,
"Dataset store"):

* ``raw``: the frames decoded and resized to the short side ``resize``, as uint8 pixels. A clip is
  a gather of crop windows from the map: the fastest to read, and the largest (262 KB a 256x341
  RGB frame): for datasets of a few GB to a few tens of GB.
* ``jpeg``: JPEG bytes, the frames as published when the source frames are JPEGs (the store is
  then the size of the JPEGs it packs), or re-encoded at a stated quality after resizing (lossy,
  opt-in). A clip decodes only its picked frames.

The package, by seam: :mod:`~fpar.data.store.format` (the files, constants, checksums and the
checks on open), :mod:`~fpar.data.store.sources` (what a store is built from, whether it is up to
date), :mod:`~fpar.data.store.writer` (building), :mod:`~fpar.data.store.parts` (building in parts),
:mod:`~fpar.data.store.reading` (:class:`FrameStore`) and :mod:`~fpar.data.store.verify` (the index
checked against the shards and the dataset: ``fpar cache --verify``, ``fpar data check --deep``).
"""

from fpar.data.store.format import (CODECS, FORMAT_VERSION, INDEX_NAME, RAW_LIMIT_BYTES, SHARD_BYTES, SOURCES_NAME,
                                    TABLE_NAME, default_store_path, frame_hash, kinds_for)
from fpar.data.store.parts import part_instances
from fpar.data.store.reading import FrameStore, decode_jpeg, ensure_store, open_store, store_problems
from fpar.data.store.sources import choose_codec
from fpar.data.store.writer import build_store

__all__ = ["CODECS", "FORMAT_VERSION", "INDEX_NAME", "RAW_LIMIT_BYTES", "SHARD_BYTES", "SOURCES_NAME", "TABLE_NAME",
           "FrameStore", "build_store", "choose_codec", "decode_jpeg", "default_store_path", "ensure_store",
           "frame_hash", "kinds_for", "open_store", "part_instances", "store_problems"]
