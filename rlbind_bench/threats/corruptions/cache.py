"""Corrupted inputs made ahead of the model, in the DataLoader workers, and kept on disk across runs.

A corrupted input is a function of (clean input, modality, corruption, severity, seed, sample id) and of
the corruption code (see the package docstring), so that is its key: the sha256 of the sample id, a
content hash of the decoded clean input (which covers the file and every input-space setting: size,
frames, clip length), the corruption, severity and seed, the modality, a digest of this package's source
files (the vendored imagecorruptions in ic/ and its frost images included), and the versions of the
libraries the corruptions call. A second model evaluated on the same data, or a rerun, reads the
corruptions instead of making them again.

Files: `<cache>/corruptions/<key[:2]>/<key>.bin`, a header (magic, JSON: dtype, shape, sha256 of the
payload) and the raw payload. A value is stored as uint8 when it is exactly k/255 for every element (image,
thermal and depth corruptions round to 8 bits, so they always are: 150 KB per 224x224 input instead of
600 KB), else as float32; the stored value decodes to the same bits either way, so results are identical
with and without the cache. Anything unreadable, truncated, of the wrong shape or failing its checksum is
treated as absent and made again. Writes go to a temporary file renamed into place, so a reader never sees
a partial file (and a torn write after a crash fails its checksum).

Size: with a `caches.SizeCap` the least recently used entries of the whole user cache are evicted when the
cache is opened and as writes add up (caches.py); a read touches its entry, so "used" means read or written.

Video is not cached on disk: at 8 x 3 x 224 x 224 a full suite needs about 200 MB per clip (float32 for the
temporal corruptions, whose frames are not 8-bit), too much to keep. With DataLoader workers, video
corruptions are still made in the workers, ahead of the model, and handed over in memory (`in_memory`),
when the batches in flight fit a memory budget (runner: `in_memory_prefetch_fits`); otherwise, and with
no workers, they are made in the main process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# `corruptions.corrupt` is looked up on the package at call time, so that tests can count the calls.
from rlbind_bench.caches import SizeCap
from rlbind_bench.threats import corruptions

CACHED_MODALITIES = ("image", "thermal", "depth", "audio")
MAGIC = b"RLBCORR1"
FORMAT = 1
# Libraries whose behaviour the corrupted values depend on: a new version may change them.
LIBRARIES = ("numpy", "scipy", "scikit-image", "opencv-python", "opencv-python-headless", "Pillow", "torch")
# k/255 as float32, computed as the decoder of a uint8 entry must: float64 division, then rounding to float32.
_UINT8_VALUES = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
DTYPES = {"uint8": 1, "float32": 4}  # bytes per element


@dataclass(frozen=True)
class Variant:
    """One corrupted version of a sample: (corruption, severity, seed), the seed being the corruption's."""

    name: str
    severity: int
    seed: int


def code_files() -> list[Path]:
    """The files whose content makes a corrupted value: this package's modules, the vendored
    imagecorruptions (ic/) and its frost images; not cache.py, which only stores values."""
    here = Path(__file__).parent
    files = [p for p in here.rglob("*") if p.is_file() and (p.suffix == ".py" or p.parent.name == "frost")]
    return sorted((p for p in files if p.name != "cache.py" and "__pycache__" not in p.parts),
                  key=lambda p: p.relative_to(here).as_posix())


@functools.cache
def code_digest() -> str:
    import importlib.metadata as md

    h = hashlib.sha256()
    here = Path(__file__).parent
    for path in code_files():
        h.update(path.relative_to(here).as_posix().encode() + b"\0" + path.read_bytes())
    for lib in LIBRARIES:
        try:
            version = md.version(lib)
        except md.PackageNotFoundError:
            version = "-"
        h.update(f"{lib}={version}\0".encode())
    return h.hexdigest()[:16]


def input_fingerprint(x: torch.Tensor) -> str:
    a = x.detach().cpu().contiguous().numpy()
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def encode(x: torch.Tensor) -> tuple[str, np.ndarray]:
    """(dtype name, array): uint8 when that decodes to exactly the same float32 bits, else float32."""
    a = x.detach().cpu().contiguous().numpy()
    if a.dtype != np.float32:
        raise TypeError(f"corrupted inputs are float32, got {a.dtype}")
    if a.size and np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0:
        u = np.rint(a * np.float32(255.0)).astype(np.uint8)
        # The check that makes uint8 lossless, bitwise so that -0.0 (or anything off the k/255 grid) stays float32.
        if np.array_equal(_UINT8_VALUES[u].view(np.uint32), a.view(np.uint32)):
            return "uint8", u
    return "float32", a.astype("<f4", copy=False)


def decode(dtype: str, payload: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    if dtype == "uint8":
        return torch.from_numpy(_UINT8_VALUES[np.frombuffer(payload, dtype=np.uint8)].reshape(shape))
    return torch.from_numpy(np.frombuffer(payload, dtype="<f4").astype(np.float32).reshape(shape))


class CorruptionCache:
    def __init__(self, root: Path, cap: SizeCap | None = None):
        self.root = Path(root)
        self.code = code_digest()
        self.cap = cap

    def key(self, modality: str, sample_id: str, fingerprint: str, variant: Variant) -> str:
        payload = json.dumps({"format": FORMAT, "code": self.code, "modality": modality, "sample_id": sample_id,
                              "input": fingerprint, "corruption": variant.name, "severity": int(variant.severity),
                              "seed": int(variant.seed)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.bin"

    def _read(self, key: str, shape: tuple[int, ...]) -> tuple[str, bytes] | None:
        """(dtype, payload) of a complete, intact entry of this shape, else None."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        # A cache must never take a run down: whatever is wrong with a file, it is made again.
        try:
            if not data.startswith(MAGIC):
                return None
            start = len(MAGIC) + 4
            n = int.from_bytes(data[len(MAGIC):start], "little")
            header = json.loads(data[start:start + n])
            payload = data[start + n:]
            if (not isinstance(header, dict) or header.get("format") != FORMAT
                    or tuple(header.get("shape", ())) != tuple(shape)
                    or hashlib.sha256(payload).hexdigest() != header.get("sha256")
                    or header.get("dtype") not in DTYPES
                    or len(payload) != DTYPES[header["dtype"]] * int(np.prod(shape, dtype=np.int64))):
                return None
            with contextlib.suppress(OSError):  # recently used, for the cap's eviction order
                os.utime(path)
            return header["dtype"], payload
        except Exception:
            return None

    def has(self, key: str, shape: tuple[int, ...]) -> bool:
        return self._read(key, shape) is not None

    def load(self, key: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        """The stored tensor, or None for anything but a complete, intact entry of this shape."""
        entry = self._read(key, shape)
        return decode(entry[0], entry[1], tuple(shape)) if entry else None

    def store(self, key: str, x: torch.Tensor) -> bool:
        dtype, array = encode(x)
        payload = array.tobytes()
        header = json.dumps({"format": FORMAT, "dtype": dtype, "shape": list(array.shape),
                             "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        path = self.path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(MAGIC + len(header).to_bytes(4, "little") + header + payload)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        if self.cap is not None:
            self.cap.wrote(len(MAGIC) + 4 + len(header) + len(payload))
        return True

    def writable(self) -> bool:
        probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
            return True
        except OSError:
            return False

    def ensure(self, modality: str, sample_id: str, x: torch.Tensor, variants: list[Variant]) -> dict[Variant, str]:
        """Make (or find) every variant of one clean input on disk; variant -> key for those that are there."""
        fingerprint = input_fingerprint(x)
        x = x.contiguous()
        refs = {}
        for v in variants:
            key = self.key(modality, sample_id, fingerprint, v)
            if not self.has(key, tuple(x.shape)):
                out = corruptions.corrupt(modality, v.name, v.severity, x, seed=v.seed, sample_id=sample_id)
                if not self.store(key, out):
                    continue  # the main process makes it (a full disk must not stop the run)
            refs[v] = key
        return refs


class CorruptingDataset(Dataset):
    """An InputSpaceDataset whose items also carry, per readable sample, its variants' cache keys.

    The corruptions are made here, so in the DataLoader's workers when there are any, ahead of the model.
    With ``in_memory`` (and no cache) the items carry the corrupted tensors themselves instead of keys."""

    def __init__(self, base, variants: list[Variant], cache: CorruptionCache | None, in_memory: bool = False):
        self.base = base
        self.index = base.index
        self.in_memory = in_memory and cache is None
        self.variants = list(variants) if cache is not None or self.in_memory else []
        self.cache = cache

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        i, x, err = self.base[i]
        if x is None or not self.variants:
            return i, x, err, {}
        sample_id = self.index.samples[i].sample_id
        if self.in_memory:
            return i, x, err, {v: corruptions.corrupt(self.index.spec.modality, v.name, v.severity, x, seed=v.seed,
                                                      sample_id=sample_id) for v in self.variants}
        return i, x, err, self.cache.ensure(self.index.spec.modality, sample_id, x, self.variants)


class StackedCorruptions:
    """One batch's corrupted inputs made in memory by a worker: variant -> [B, ...] tensor.

    Stacked per variant in the worker's collate, so a batch crosses to the main process as one shared-memory
    block per variant rather than one per (sample, variant). Sliced like the list of per-sample refs it
    replaces (the OOM back-off splits batches)."""

    def __init__(self, tensors: dict[Variant, torch.Tensor], n: int):
        self.tensors = tensors
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, s: slice) -> StackedCorruptions:
        if not isinstance(s, slice):
            raise TypeError("StackedCorruptions slices only")
        return StackedCorruptions({v: t[s] for v, t in self.tensors.items()}, len(range(*s.indices(self.n))))


def has_prefetched(refs) -> bool:
    if isinstance(refs, StackedCorruptions):
        return bool(refs.tensors)
    return any(refs)


def collate_with_refs(batch):
    ok = [(i, x, refs) for i, x, _, refs in batch if x is not None]
    bad = [(i, err) for i, x, err, _ in batch if x is None]
    idx = torch.tensor([i for i, _, _ in ok], dtype=torch.long)
    xs = torch.stack([x for _, x, _ in ok]) if ok else None
    refs = [r for _, _, r in ok]
    if refs and all(r and all(isinstance(v, torch.Tensor) for v in r.values()) for r in refs):
        variants = list(refs[0])
        if all(list(r) == variants for r in refs):
            return idx, xs, bad, StackedCorruptions({v: torch.stack([r[v] for r in refs]) for v in variants},
                                                    len(refs))
    return idx, xs, bad, refs


class PrefetchedCorruptions:
    """What the corruption threat reads instead of corrupting: one batch's variants, from the cache (a key per
    variant) or made in a worker (the tensor itself)."""

    def __init__(self, cache: CorruptionCache | None, refs: list[dict[Variant, str | torch.Tensor]],
                 sample_shape: tuple[int, ...]):
        self.cache = cache
        self.refs = refs
        self.sample_shape = tuple(sample_shape)

    def batch(self, name: str, severity: int, seed: int) -> torch.Tensor | None:
        """[B, ...] float32 on CPU, or None when any sample's entry is missing (the caller corrupts instead)."""
        v = Variant(name, int(severity), int(seed))
        if isinstance(self.refs, StackedCorruptions):
            t = self.refs.tensors.get(v)
            return t if t is not None and tuple(t.shape[1:]) == self.sample_shape else None
        out = []
        for refs in self.refs:
            key = refs.get(v)
            if isinstance(key, torch.Tensor):
                x = key if tuple(key.shape) == self.sample_shape else None
            else:
                x = self.cache.load(key, self.sample_shape) if key and self.cache is not None else None
            if x is None:
                return None
            out.append(x)
        return torch.stack(out) if out else None


def open_cache(root: Path, cap: SizeCap | None = None) -> CorruptionCache | None:
    cache = CorruptionCache(root, cap)
    if cache.writable():
        if cap is not None:
            cap.enforce()  # what earlier runs left, each under its own check interval
        return cache
    warnings.warn(f"corruption cache {root} is not writable: corruptions are made in the main process, "
                  "uncached", stacklevel=2)
    return None
