"""The evaluation grid: model x dataset x threat cell, one row per (sample, cell), resumable by shard.

Clean logits are computed once per sample and shared by every threat. Samples are processed in fixed
shards (independent of the batch size); each shard's rows land in one atomically written part, so a rerun
of the same command skips finished shards and ends with the same table.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from rlbind_bench.batching import available_host_bytes, parse_batch_size, resolve_batch_size
from rlbind_bench.config import DatasetSpec, RunConfig, adhoc_dataset, load_datasets
from rlbind_bench.data.readers import DatasetIndex, InputSpaceDataset, index_dataset
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.hashing import config_hash
from rlbind_bench.paths import default_data_root, user_cache_dir
from rlbind_bench.results.provenance import device_name, iso_time, provenance
from rlbind_bench.results.schema import SAMPLE_COLUMNS, SAMPLE_SCHEMA, SUMMARY_COLUMNS, SUMMARY_SCHEMA
from rlbind_bench.results.stats import wilson_interval
from rlbind_bench.results.store import (
    check_writable,
    read_table,
    write_json_atomic,
    write_table_atomic,
)
from rlbind_bench.suites import get_suite
from rlbind_bench.threats.base import Attack, AttackContext, Cell, ThreatSpec
from rlbind_bench.threats.checks import ADVERSARIAL, CHECKS, apply_checks, probe_batch
from rlbind_bench.threats.corruptions.cache import (
    CACHED_MODALITIES,
    CorruptingDataset,
    PrefetchedCorruptions,
    Variant,
    collate_with_refs,
    has_prefetched,
    open_cache,
)
from rlbind_bench.threats.registry import build_attack, load_threats, validate_eps
from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

SHARD_SIZE = 256
# Config fields that only change speed: left out of run_id (AutoAttack rows aside, which record batch_size).
SPEED_ONLY = ("batch_size", "device", "deterministic", "workers")
# Options that change the numbers, with their defaults. They enter run_id and every cell's config_hash only
# when set, so runs made before the options existed keep their hashes.
NUMERIC_OPTIONS = {"precision": "fp32", "compile": False}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
_NO_DEFAULT = object()


@dataclass
class RunRequest:
    config: RunConfig
    out: Path
    data_root: Path | None = None
    datasets_file: Path | None = None
    dataset_dirs: dict[str, str] = field(default_factory=dict)
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    encoder: BoundEncoder | None = None  # pre-built (tests, the trainer); else built from config.model
    corruption_cache: bool = True  # corrupted inputs made in the loader's workers, kept under the user cache


@dataclass
class RunOutcome:
    out: Path
    samples: pd.DataFrame
    summary: pd.DataFrame
    run: dict


def resolve_threats(cfg: RunConfig) -> list[ThreatSpec]:
    """Suite threats (+ --threats), with the suite's and then the command line's overrides applied."""
    suite = get_suite(cfg.suite)
    available = load_threats()
    uses = list(suite.threats)
    if cfg.threats:
        named = {u.threat for u in uses}
        for t in cfg.threats:
            if t not in available:
                raise UserError(f"unknown threat {t!r} (known: {', '.join(sorted(available))})")
            if t not in named:
                from rlbind_bench.suites import ThreatUse

                uses.append(ThreatUse(t))
        uses = [u for u in uses if u.threat == "clean" or u.threat in cfg.threats]
    specs = []
    for use in uses:
        if use.threat not in available:
            raise UserError(f"suite {suite.name} names threat {use.threat!r}, which attacks/ does not define")
        spec = available[use.threat]
        overrides = {k: v for k, v in use.overrides.items() if k in {f.name for f in dataclasses.fields(spec)}}
        if "quick" in use.overrides and spec.attack == "corruptions":
            from rlbind_bench.suites import QUICK_CORRUPTIONS

            overrides["spaces"] = {**spec.spaces, "quick": QUICK_CORRUPTIONS}
        if spec.attack not in ("clean", "corruptions"):
            if cfg.eps is not None:
                overrides["eps"] = tuple(cfg.eps)
            if cfg.steps is not None:
                overrides["steps"] = cfg.steps
        spec = dataclasses.replace(spec, **overrides)
        validate_eps(spec.eps, spec.norm, f"threat {spec.name}")
        specs.append(spec)
    return specs


def resolve_datasets(req: RunRequest, encoder: BoundEncoder) -> list[DatasetSpec]:
    cfg = req.config
    wanted_modalities = cfg.modalities or list(encoder.modalities)
    for m in wanted_modalities:
        encoder.require(m)
    if req.dataset_dirs:
        specs = [adhoc_dataset(m, p, cfg.templates) for m, p in req.dataset_dirs.items()]
    else:
        catalogue = load_datasets(req.datasets_file)
        if cfg.datasets:
            unknown = [d for d in cfg.datasets if d not in catalogue]
            if unknown:
                raise UserError(f"unknown dataset {unknown[0]!r} (known: {', '.join(sorted(catalogue)) or 'none'})")
            specs = [catalogue[d] for d in cfg.datasets]
        else:
            root = req.data_root or default_data_root()
            specs = [s for s in catalogue.values() if s.root(root).is_dir()]
            if not specs:
                raise UserError(f"no dataset found under data root {root}: give --datasets NAME, "
                                "--dataset-dir MODALITY=PATH or --data-root")
        if cfg.templates:
            specs = [dataclasses.replace(s, templates=list(cfg.templates)) for s in specs]
        if cfg.split:
            specs = [dataclasses.replace(s, split=cfg.split) for s in specs]
    specs = [s for s in specs if s.modality in wanted_modalities]
    for s in specs:
        encoder.require(s.modality)
    if not specs:
        raise UserError(f"no dataset left for modalities {', '.join(wanted_modalities)}")
    return specs


def audio_clip_seconds(index: DatasetIndex, encoder: BoundEncoder) -> float:
    """The dataset's declared clip length, or the longest of (up to 64 of) its files."""
    if index.spec.clip_seconds:
        return float(index.spec.clip_seconds)
    import soundfile as sf

    longest = 0.0
    for sample in index.samples[:64]:
        try:
            info = sf.info(str(sample.path))
            longest = max(longest, info.frames / info.samplerate)
        except Exception:  # unreadable files are reported when loaded
            continue
    return round(longest, 3) if longest > 0 else 5.0


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def add(self, description: str, total: int):
        return self.bar.add_task(description, total=total, rate="") if self.bar else None

    def update(self, task, advance: int, rate: float, description: str | None = None):
        if self.bar is not None:
            kwargs = {"description": description} if description else {}
            self.bar.update(task, advance=advance, rate=f"{rate:.1f} samples/s", **kwargs)


def distributed_context() -> tuple[int, int]:
    """(rank, world size). Under torchrun (WORLD_SIZE > 1) joins the process group: gloo on CPU, NCCL on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("RLBIND_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def run_evaluation(req: RunRequest) -> RunOutcome:
    cfg = req.config
    rank, world = distributed_context()
    if world > 1 and cfg.device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cfg = dataclasses.replace(cfg, device=f"cuda:{local}")
        torch.cuda.set_device(local)
    cfg = dataclasses.replace(cfg, batch_size=parse_batch_size(cfg.batch_size))
    if cfg.n_samples is not None and cfg.n_samples < 1:
        raise ConfigError("--n-samples must be >= 1")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    out = Path(req.out)
    check_writable(out)
    started = time.time()
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda given but no CUDA device is available")
    if cfg.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16: {torch.cuda.getdevice_name(device)} does not support bfloat16")
    threat_specs = resolve_threats(cfg)
    suite = get_suite(cfg.suite)
    n_samples = cfg.n_samples if cfg.n_samples is not None else suite.n_samples
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    if req.encoder is not None:
        encoder = req.encoder
    else:
        from rlbind_bench.encoders.registry import load_encoder

        encoder = load_encoder(cfg.model)
    encoder = encoder.to(device).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    datasets = resolve_datasets(req, encoder)
    data_root = req.data_root or default_data_root()
    # Deterministic, so that a resumed run's parts carry the same run_id as an uninterrupted one.
    identity = {k: v for k, v in dataclasses.asdict(cfg).items()
                if k not in SPEED_ONLY and NUMERIC_OPTIONS.get(k, _NO_DEFAULT) != v}
    run_id = config_hash({"config": identity, "fingerprint": encoder.fingerprint()})[:12]
    numeric_options = {k: getattr(cfg, k) for k, default in NUMERIC_OPTIONS.items() if getattr(cfg, k) != default}
    workers = resolve_workers(cfg.workers, device)
    # Opened (and checked) only by runs that evaluate corruptions.
    corruption_cache = functools.cache(lambda: open_cache(user_cache_dir() / "corruptions"))
    parts_dir = out / "parts"
    skipped: dict[str, list[str]] = {}
    cell_catalogue: list[dict] = []
    diagnostics: dict[str, dict] = {}
    batch_sizes: dict[str, int] = {}
    with _Progress(req.progress and rank == 0) as progress:
        for spec in datasets:
            index = index_dataset(spec, data_root, n_samples)
            hints = {"clip_seconds": audio_clip_seconds(index, encoder)} if spec.modality == "audio" else {}
            space = encoder.input_space(spec.modality, **hints)
            class_emb = build_class_embeddings(encoder, index.prompts, spec.template_list(),
                                               cache_dir=user_cache_dir() / "text")
            classifier = ZeroShotClassifier(encoder, spec.modality, class_emb.to(device), cfg.logit_scale,
                                            autocast_dtype=PRECISIONS[cfg.precision]).eval()
            if cfg.compile:
                classifier = torch.compile(classifier)
            attacks = [build_attack(t) for t in threat_specs if spec.modality in t.modalities]
            plan = [(a, c) for a in attacks for c in cells_of(a, spec.modality)]
            if not plan:
                continue
            base_cfg = {"model": cfg.model, "fingerprint": encoder.fingerprint(), "dataset": spec.name,
                        "templates": spec.template_list(), "classes": index.prompts, "logit_scale": cfg.logit_scale,
                        "space": dataclasses.asdict(space), "seed": cfg.seed, **numeric_options}
            hashes = {c.key: config_hash({**base_cfg, **a.cell_config(c)}) for a, c in plan}
            for a, c in plan:
                cell_catalogue.append({"dataset": spec.name, "modality": spec.modality, "cell": c.key,
                                       "config_hash": hashes[c.key], "config": a.cell_config(c)})
            shard_size = int(os.environ.get("RLBIND_SHARD_SIZE", SHARD_SIZE))
            shard_hash = config_hash({**base_cfg, "cells": sorted(hashes.values()), "n": len(index.samples),
                                      "shard_size": shard_size,
                                      "ids": config_hash({"ids": [s.sample_id for s in index.samples]})})
            dataset = InputSpaceDataset(index, encoder.preprocess_config(spec.modality), hints)
            variants = corruption_variants(plan, cfg.seed)
            cached = spec.modality in CACHED_MODALITIES
            cache = corruption_cache() if variants and cached and req.corruption_cache else None
            if any(a.spec.attack in ADVERSARIAL for a, _ in plan):
                diagnostics[spec.name] = _diagnose(dataset, classifier, space, device, cfg, out, shard_hash,
                                                   norm=next(c.norm for a, c in plan if a.spec.attack in ADVERSARIAL))
            example = functools.cache(lambda dataset=dataset: _first_input(dataset))
            batch_size = resolve_batch_size(cfg.batch_size, classifier, example, device, n_samples=len(index.samples),
                                            needs_grad=any(a.spec.attack in ADVERSARIAL for a, _ in plan),
                                            autoattack=any(a.spec.attack == "autoattack" for a, _ in plan),
                                            in_flight_batches=workers * PREFETCH_FACTOR + 2)
            batch_sizes[spec.name] = batch_size
            in_memory = (bool(variants) and not cached and req.corruption_cache and workers > 0
                         and in_memory_prefetch_fits(example(), len(variants), batch_size, workers))
            n_shards = math.ceil(len(index.samples) / shard_size)
            task = progress.add(f"{spec.modality}/{spec.name}", len(index.samples))
            pending: list[tuple[Path, range]] = []
            for shard in range(n_shards):
                if shard % world != rank:  # deterministic round-robin: each rank writes its own parts
                    continue
                part = parts_dir / _safe(spec.name) / f"{shard:05d}-{shard_hash}.parquet"
                lo, hi = shard * shard_size, min(len(index.samples), (shard + 1) * shard_size)
                sidecar = part.with_suffix(".skipped.json")
                if part.is_file():
                    if sidecar.is_file():
                        skipped.setdefault(spec.name, []).extend(json.loads(sidecar.read_text()))
                    progress.update(task, hi - lo, 0.0)
                    continue
                pending.append((part, range(lo, hi)))
            prefetching = CorruptingDataset(dataset, variants, cache, in_memory=in_memory)
            for part, rows, bad in _run_shards(prefetching, pending, classifier, plan,
                                               hashes, cfg, run_id, spec, space, device, workers, progress, task,
                                               batch_size):
                skipped.setdefault(spec.name, []).extend(bad)
                frame = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
                # The sidecar first: a part without its sidecar would lose the skip list.
                write_json_atomic(part.with_suffix(".skipped.json"), bad)
                write_table_atomic(part, frame, SAMPLE_SCHEMA)
    _barrier(world)
    if rank != 0:  # rank 0 merges; the others only wrote their parts
        empty = pd.DataFrame(columns=SAMPLE_COLUMNS)
        return RunOutcome(out, empty, pd.DataFrame(columns=SUMMARY_COLUMNS), {"rank": rank, "skipped_files": {}})
    skipped = _collect_skipped(parts_dir, datasets)
    samples = _merge_parts(parts_dir, datasets)
    summary = apply_checks(summarise(samples, skipped), samples, diagnostics,
                           {t.name: t.attack for t in threat_specs})
    write_table_atomic(out / "samples.parquet", samples, SAMPLE_SCHEMA)
    write_table_atomic(out / "summary.parquet", summary, SUMMARY_SCHEMA)
    run = {"run_id": run_id, "config": dataclasses.asdict(cfg), "threats": [t.to_dict() for t in threat_specs],
           "datasets": [dataclasses.asdict(d) for d in datasets], "cells": cell_catalogue,
           "device": device_name(device), "seed": cfg.seed, "command": req.command,
           "started": iso_time(started), "finished": iso_time(time.time()), "seconds": round(time.time() - started, 3),
           "skipped_files": skipped, "checks": diagnostics, "batch_sizes": batch_sizes,
           "check_definitions": {k: dataclasses.asdict(v) for k, v in CHECKS.items()}, "provenance": provenance()}
    write_json_atomic(out / "run.json", run)
    return RunOutcome(out, samples, summary, run)


def _diagnose(dataset, classifier, space, device, cfg: RunConfig, out: Path, key: str, norm: str) -> dict:
    """Sanity-check probes on the first (up to 16) readable samples, cached beside the parts for resumes."""
    cache = out / "parts" / f"checks-{_safe(dataset.index.spec.name)}-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    xs = []
    for i in range(len(dataset)):
        _, x, _ = dataset[i]
        if x is not None:
            xs.append(x)
        if len(xs) == 16:
            break
    if not xs:
        return {}
    while True:
        try:
            x = torch.stack(xs).to(device)
            with torch.no_grad():
                pred = classifier(x).argmax(1)
            # Probe against the model's own predictions: the checks ask whether attacks can move the model at all.
            result = probe_batch(classifier, x, pred, space.low, space.high, norm=norm or "Linf")
            break
        except torch.cuda.OutOfMemoryError:
            if len(xs) == 1:
                raise
            torch.cuda.empty_cache()
            xs = xs[: len(xs) // 2]
    write_json_atomic(cache, result)
    return result


def _first_input(dataset) -> torch.Tensor | None:
    for i in range(len(dataset)):
        _, x, _ = dataset[i]
        if x is not None:
            return x
    return None


def cells_of(attack: Attack, modality: str) -> list[Cell]:
    per_modality = getattr(attack, "cells_for", None)
    return per_modality(modality) if per_modality else attack.cells()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def corruption_variants(plan: list[tuple[Attack, Cell]], run_seed: int) -> list[Variant]:
    """The corrupted versions of each sample that the plan's corruption cells evaluate, each once."""
    found = [Variant(c.variant, c.severity, a.spec.seed + run_seed) for a, c in plan if a.spec.attack == "corruptions"]
    return list(dict.fromkeys(found))


PREFETCH_FACTOR = 2
IN_MEMORY_PREFETCH_BYTES = 4 << 30


def in_memory_prefetch_fits(example: torch.Tensor | None, n_variants: int, batch_size: int, workers: int) -> bool:
    """Whether the corrupted inputs of the batches in flight (workers x prefetch factor) fit the budget:
    min(4 GiB, a quarter of the memory available now)."""
    if example is None:
        return False
    available = available_host_bytes()
    budget = IN_MEMORY_PREFETCH_BYTES if available is None else min(IN_MEMORY_PREFETCH_BYTES, available // 4)
    in_flight = workers * PREFETCH_FACTOR * batch_size * n_variants * example.numel() * example.element_size()
    return in_flight <= budget


def resolve_workers(requested: int | None, device: torch.device) -> int:
    """DataLoader worker processes: the requested number, or 0 on CPU and min(8, cores - 1) on a GPU."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
            raise ConfigError(f"--workers must be a non-negative integer, got {requested!r}")
        return requested
    if device.type == "cpu":
        # The model's forward already uses every core: decoding in other processes would only take turns with it.
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _run_shards(dataset, pending: list[tuple[Path, range]], classifier, plan: list[tuple[Attack, Cell]], hashes,
                cfg: RunConfig, run_id, spec: DatasetSpec, space, device, workers: int, progress, task,
                batch_size: int):
    """Yield (part, rows, skipped) per pending shard, in order.

    One loader covers every pending shard, so that workers keep decoding (and prefetching) across shard
    boundaries; no batch spans two shards, so a shard's rows do not depend on which shards were pending."""
    if not pending:
        return
    batches, last_of = [], {}
    for n, (_, indices) in enumerate(pending):
        batches += [list(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]
        last_of[len(batches) - 1] = n
    extra = {"prefetch_factor": PREFETCH_FACTOR, "persistent_workers": False} if workers > 0 else {}
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_with_refs, num_workers=workers,
                        pin_memory=device.type == "cuda", **extra)
    rows: list[tuple] = []
    bad: list[str] = []
    samples = dataset.index.samples
    fits = [batch_size]  # the largest batch known to fit: lowered by an out-of-memory error, for every later batch
    # InputSpaceDataset returns dataset-level indices: the rows never depend on batch order.
    for b, (batch_idx, x, failures, refs) in enumerate(loader):
        bad += [f"{samples[i].sample_id}: {err}" for i, err in failures]
        if x is not None:
            t0 = time.time()
            idx = [int(i) for i in batch_idx]
            space.check(x)
            rows += _evaluate_with_backoff(x, idx, refs, samples, classifier, plan, hashes, cfg, run_id, spec, space,
                                           device, dataset.cache, fits=fits)
            progress.update(task, len(idx), len(idx) / max(time.time() - t0, 1e-9))
        if b in last_of:
            yield pending[last_of[b]][0], rows, bad
            rows, bad = [], []


def _evaluate_with_backoff(x, idx, refs, samples, classifier, plan, hashes, cfg, run_id, spec, space, device,
                          cache, fits: list[int] | None = None) -> list[tuple]:
    """Evaluate one batch; on GPU out-of-memory, evaluate its two halves instead (recursively), and remember
    the smaller size in ``fits`` so that later batches start there.

    Per-sample seeding makes the rows independent of how the batch is split (AutoAttack aside)."""
    fits = fits if fits is not None else [len(idx)]
    args = (samples, classifier, plan, hashes, cfg, run_id, spec, space, device, cache)
    if len(idx) > fits[0]:
        n = fits[0]
        return [row for i in range(0, len(idx), n)
                for row in _evaluate_with_backoff(x[i:i + n], idx[i:i + n], refs[i:i + n], *args, fits=fits)]
    try:
        return _evaluate_batch(x, idx, refs, *args)
    except torch.cuda.OutOfMemoryError:
        if len(idx) == 1:
            raise
        torch.cuda.empty_cache()
        h = len(idx) // 2
        fits[0] = min(fits[0], h)
        return (_evaluate_with_backoff(x[:h], idx[:h], refs[:h], *args, fits=fits)
                + _evaluate_with_backoff(x[h:], idx[h:], refs[h:], *args, fits=fits))


def _evaluate_batch(x, idx, refs, samples, classifier, plan, hashes, cfg: RunConfig, run_id, spec: DatasetSpec,
                    space, device, cache) -> list[tuple]:
    ids = [samples[i].sample_id for i in idx]
    y = torch.tensor([samples[i].label for i in idx], dtype=torch.long)
    x, yd = x.to(device), y.to(device)
    with torch.no_grad():
        clean_logits = classifier(x).float()
    clean_pred = clean_logits.argmax(1).cpu()
    corrupted = PrefetchedCorruptions(cache, refs, tuple(x.shape[1:])) if has_prefetched(refs) else None
    ctx = AttackContext(spec.modality, cfg.seed, ids, clean_logits, space.low, space.high, classifier.num_classes,
                        device, corrupted)
    rows = []
    for attack, cell in plan:
        res = attack.run(classifier, x, yd, cell, ctx)
        for j in range(len(idx)):
            valid = bool(res.valid[j])
            pred = int(res.pred[j])
            rows.append((run_id, cfg.model, spec.modality, spec.name, ids[j], int(y[j]), cell.label, cell.norm,
                         cell.eps, cell.severity, hashes[cell.key], int(clean_pred[j]), pred,
                         valid and pred == int(y[j]), cfg.seed, bool(res.attacked[j]), res.broken_by[j],
                         float(res.perturbation_norm[j]), float(res.margin[j]), valid))
    return rows


def _collect_skipped(parts_dir: Path, datasets: list[DatasetSpec]) -> dict[str, list[str]]:
    """Unreadable files, from every part's sidecar (written by whichever rank ran the shard)."""
    out: dict[str, list[str]] = {}
    for spec in datasets:
        folder = parts_dir / _safe(spec.name)
        for sidecar in sorted(folder.glob("*.skipped.json")) if folder.is_dir() else []:
            out.setdefault(spec.name, []).extend(json.loads(sidecar.read_text()))
    return out


def _merge_parts(parts_dir: Path, datasets: list[DatasetSpec]) -> pd.DataFrame:
    frames = []
    for spec in datasets:
        folder = parts_dir / _safe(spec.name)
        for part in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            frames.append(read_table(part))
    if not frames:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    merged = pd.concat(frames, ignore_index=True)
    return merged.sort_values(["dataset", "threat", "norm", "eps", "severity", "sample_id"],
                              kind="stable").reset_index(drop=True)


GROUP_KEYS = ["model", "modality", "dataset", "threat", "norm", "eps", "severity", "config_hash"]


def summarise(samples: pd.DataFrame, skipped: dict[str, list[str]] | None = None) -> pd.DataFrame:
    rows = []
    if len(samples):
        for key, grp in samples.groupby(GROUP_KEYS, dropna=False, sort=True):
            valid = grp[grp["valid"]]
            n, k = len(valid), int(valid["correct"].sum())
            lo, hi = wilson_interval(k, n)
            rec = dict(zip(GROUP_KEYS, key, strict=True))
            rec.update(n=n, n_correct=k, accuracy=(k / n if n else math.nan), ci_low=lo, ci_high=hi,
                       n_invalid=int((~grp["valid"]).sum()), n_skipped=len((skipped or {}).get(rec["dataset"], [])),
                       checks_failed="")
            rows.append(rec)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
