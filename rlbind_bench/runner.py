"""The evaluation grid: model x dataset x threat cell, one row per (sample, cell), resumable by shard.

Clean logits are computed once per sample and shared by every threat. Samples are processed in fixed
shards (independent of the batch size); each shard's rows land in one atomically written part, so a rerun
of the same command skips finished shards and ends with the same table.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from rlbind_bench.batching import (
    PREFETCH_FACTOR,
    configured_shard_size,
    in_memory_prefetch_fits,
    parse_batch_size,
    resolve_batch_size,
    resolve_workers,
    shard_batches,
    shard_ranges,
)
from rlbind_bench.caches import size_cap
from rlbind_bench.config import DatasetSpec, RunConfig, RunRequest, resolve_datasets
from rlbind_bench.data.readers import InputSpaceDataset, index_dataset, index_named
from rlbind_bench.distributed import barrier, distributed_context, part_writers
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.files import slugify, write_json_atomic
from rlbind_bench.hashing import config_hash
from rlbind_bench.modalities import get_handler
from rlbind_bench.paths import default_data_root, user_cache_dir
from rlbind_bench.progress import Progress
from rlbind_bench.results.provenance import device_name, iso_time, provenance
from rlbind_bench.results.schema import SAMPLE_COLUMNS, SAMPLE_SCHEMA, SUMMARY_COLUMNS, SUMMARY_SCHEMA
from rlbind_bench.results.store import check_writable, collect_skipped, merge_parts, write_table_atomic
from rlbind_bench.results.summary import summarise
from rlbind_bench.suites import get_suite, resolve_threats
from rlbind_bench.threats.base import Attack, AttackContext, AttackSetup, Cell
from rlbind_bench.threats.checks import CHECKS, apply_checks
from rlbind_bench.threats.corruption_threat import CorruptionThreat
from rlbind_bench.threats.corruptions.cache import (
    CACHED_MODALITIES,
    CorruptingDataset,
    PrefetchedCorruptions,
    Variant,
    collate_with_refs,
    has_prefetched,
    open_cache,
)
from rlbind_bench.threats.probes import PROBE_CHECKS, diagnose
from rlbind_bench.threats.registry import build_plan, check_eps_budget
from rlbind_bench.threats.subset import fixed_subset, narrow_context, subset_config
from rlbind_bench.zeroshot import (
    ZeroShotClassifier,
    build_class_embeddings,
    parse_logit_scale,
    resolve_logit_scale,
)

# Config fields that do not change the numbers (speed, or a permission): left out of run_id (batch-dependent
# attacks keep a fixed batch size).
NOT_NUMERIC = ("batch_size", "device", "deterministic", "workers", "allow_large_eps", "probe_samples")
# Options that change the numbers, with their defaults. They enter run_id and every cell's config_hash only
# when set, so runs made before the options existed keep their hashes.
NUMERIC_OPTIONS = {"precision": "fp32", "compile": False}
# Options that choose which samples run (not what a sample's row says): in run_id only when set, for the same reason.
SELECTION_OPTIONS = {"subset": None, "autoattack_subset": None}
# Options that set a threat's spec (hashed with the spec): in run_id only when set, for the same reason.
THREAT_OPTIONS = {"transfer_from": None}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
_NO_DEFAULT = object()

__all__ = ["RunOutcome", "RunRequest", "run_evaluation"]


def run_identity(cfg: RunConfig) -> dict:
    """The settings hashed into run_id: options added later enter only when set, so older runs keep their ids."""
    optional = {**NUMERIC_OPTIONS, **SELECTION_OPTIONS, **THREAT_OPTIONS}
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in NOT_NUMERIC and optional.get(k, _NO_DEFAULT) != v}


@dataclass
class RunOutcome:
    out: Path
    samples: pd.DataFrame
    summary: pd.DataFrame
    run: dict


@dataclass
class DatasetGrid:
    """Everything one dataset's batches are evaluated with: the classifier, the cells and their hashes."""

    spec: DatasetSpec
    samples: list
    classifier: torch.nn.Module
    plan: list[tuple[Attack, Cell]]
    hashes: dict[str, str]
    space: object
    cfg: RunConfig
    run_id: str
    device: torch.device
    cache: object = None  # the corruption cache the loader's workers filled, or None
    subset: frozenset | None = None  # --autoattack-subset: the sample ids the on_fixed_subset cells run on
    fits: list[int] = field(default_factory=list)  # the largest batch known to fit (lowered by OOM)


def _check_request(cfg: RunConfig) -> RunConfig:
    cfg = dataclasses.replace(cfg, batch_size=parse_batch_size(cfg.batch_size))
    if cfg.n_samples is not None and cfg.n_samples < 1:
        raise ConfigError("--n-samples must be >= 1")
    if cfg.probe_samples < 0:
        raise ConfigError(f"--probe-samples must be >= 0 (0 turns the probes off), got {cfg.probe_samples}")
    if cfg.autoattack_subset is not None and cfg.autoattack_subset < 1:
        raise ConfigError(f"--autoattack-subset must be >= 1, got {cfg.autoattack_subset}")
    cfg = dataclasses.replace(cfg, logit_scale=parse_logit_scale(cfg.logit_scale))
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda given but no CUDA device is available")
    if cfg.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16: {torch.cuda.get_device_name(device)} does not support bfloat16")
    return cfg


def run_evaluation(req: RunRequest) -> RunOutcome:
    cfg = req.config
    rank, world = distributed_context()
    if world > 1 and cfg.device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cfg = dataclasses.replace(cfg, device=f"cuda:{local}")
        torch.cuda.set_device(local)
    cfg = _check_request(cfg)
    out = Path(req.out)
    check_writable(out)
    started = time.time()
    # taken now, not when run.json is written: the code and commit that ran, not those checked out at the end
    origin = provenance()
    device = torch.device(cfg.device)
    threat_specs = resolve_threats(cfg, req.attacks_dir)
    suite = get_suite(cfg.suite)
    n_samples = cfg.n_samples if cfg.n_samples is not None else suite.n_samples
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    encoder = _frozen(req.encoder if req.encoder is not None else load_encoder(cfg.model), device)
    datasets = resolve_datasets(req, encoder)
    data_root = req.data_root or default_data_root()
    # Deterministic, so that a resumed run's parts carry the same run_id as an uninterrupted one.
    identity = run_identity(cfg)
    fingerprint = encoder.fingerprint()  # hashes every weight of the demo encoders: once per run
    run_id = config_hash({"config": identity, "fingerprint": fingerprint})[:12]
    numeric_options = {k: getattr(cfg, k) for k, default in NUMERIC_OPTIONS.items() if getattr(cfg, k) != default}
    workers = resolve_workers(cfg.workers, device)
    # Opened (and checked) only by runs that evaluate corruptions.
    corruption_cache = functools.cache(lambda: open_cache(user_cache_dir() / "corruptions",
                                                          size_cap(req.cache_max_size)))
    # Models other than the evaluated one (transfer sources), loaded once per run, with their fingerprints.
    other_models = functools.cache(lambda name: (lambda e: (e, e.fingerprint()))(_frozen(load_encoder(name), device)))
    named_index = functools.cache(functools.partial(index_named, data_root=data_root, datasets_file=req.datasets_file,
                                                    dataset_paths=req.dataset_paths))  # cross-modal target sets
    parts_dir = out / "parts"
    cell_catalogue: list[dict] = []
    class_names: dict[str, list[str]] = {}  # dataset -> the text each class put in the templates
    diagnostics: dict[str, dict] = {}
    probe_sources: dict[str, str] = {}  # dataset -> probed | user cache | resumed | off (not a result: like a time)
    batch_sizes: dict[str, int] = {}
    logit_scales: dict[str, float] = {}
    with Progress(req.progress and rank == 0) as progress:
        for spec in datasets:
            index = index_dataset(spec, data_root, n_samples)
            class_names[spec.name] = index.prompts
            hints = get_handler(spec.modality).input_hints(index)
            space = encoder.input_space(spec.modality, **hints)
            # The number used (not "model") enters the hashes: equal scales hash alike, a rerun is exact.
            logit_scales[spec.name] = resolve_logit_scale(cfg.logit_scale, encoder, spec.modality)
            classifier_for = functools.partial(_classifier, index.prompts, spec.template_list(), spec.modality, cfg,
                                               device)
            classifier = classifier_for(encoder)
            if cfg.compile:
                classifier = torch.compile(classifier)
            plan = build_plan(threat_specs, AttackSetup(spec.modality, space, hints, device, other_models,
                                                        classifier_for, encoder, index.classnames, named_index))
            if not plan:
                continue
            if not cfg.allow_large_eps:
                for a, c in plan:
                    if a.adversarial:
                        where = f"threat {a.spec.name} on {spec.name}"
                        check_eps_budget(a.amplitude_cell(c, space, where), space, where)
            # The model enters by its content fingerprint, not its name or path: a copied checkpoint keeps its hashes.
            base_cfg = {"fingerprint": fingerprint, "dataset": spec.name,
                        "templates": spec.template_list(), "classes": index.prompts, "logit_scale": logit_scales[spec.name],
                        "space": dataclasses.asdict(space), "seed": cfg.seed, **numeric_options}
            narrowed = cfg.autoattack_subset is not None
            configs = {c.key: {**a.cell_config(c, index.num_classes),
                               **(subset_config(cfg.autoattack_subset) if narrowed and a.on_fixed_subset else {})}
                       for a, c in plan}
            hashes = {key: config_hash({**base_cfg, **config}) for key, config in configs.items()}
            cell_catalogue += [{"dataset": spec.name, "modality": spec.modality, "cell": c.key,
                                "config_hash": hashes[c.key], "config": configs[c.key]} for _, c in plan]
            shard_size = configured_shard_size()
            shard_hash = config_hash({**base_cfg, "cells": sorted(hashes.values()), "n": len(index.samples),
                                      "shard_size": shard_size,
                                      "ids": config_hash({"ids": [s.sample_id for s in index.samples]})})
            dataset = InputSpaceDataset(index, encoder.preprocess_config(spec.modality), hints)
            variants = corruption_variants(plan, cfg.seed)
            cached = spec.modality in CACHED_MODALITIES
            cache = corruption_cache() if variants and cached and req.corruption_cache else None
            adversarial = [c for a, c in plan if a.adversarial]
            if adversarial:
                diagnostics[spec.name], probe_sources[spec.name] = diagnose(
                    dataset, classifier, space, device, fingerprint=fingerprint, norm=adversarial[0].norm,
                    label_free=any(a.label_free for a, _ in plan), samples=cfg.probe_samples,
                    precision=cfg.precision,
                    resume_file=parts_dir / f"checks-{slugify(spec.name)}-{shard_hash}.json")
            example = functools.cache(lambda dataset=dataset: _first_input(dataset))
            batch_size = resolve_batch_size(cfg.batch_size, classifier, example, device, n_samples=len(index.samples),
                                            needs_grad=bool(adversarial),
                                            batch_dependent=any(a.batch_dependent for a, _ in plan),
                                            in_flight_batches=workers * PREFETCH_FACTOR + 2)
            batch_sizes[spec.name] = batch_size
            in_memory = (bool(variants) and not cached and req.corruption_cache and workers > 0
                         and in_memory_prefetch_fits(example(), len(variants), batch_size, workers))
            task = progress.add(f"{spec.modality}/{spec.name}", len(index.samples))
            pending: list[tuple[Path, range]] = []
            for shard, indices in enumerate(shard_ranges(len(index.samples), shard_size)):
                if shard % world != rank:  # deterministic round-robin: each rank writes its own parts
                    continue
                part = parts_dir / slugify(spec.name) / f"{shard:05d}-{shard_hash}.parquet"
                if part.is_file():
                    progress.update(task, len(indices), 0.0)
                    continue
                pending.append((part, indices))
            grid = DatasetGrid(spec, index.samples, classifier, plan, hashes, space, cfg, run_id, device,
                               cache=cache, fits=[batch_size],
                               subset=fixed_subset([s.sample_id for s in index.samples], cfg.autoattack_subset)
                               if narrowed else None)
            prefetching = CorruptingDataset(dataset, variants, cache, in_memory=in_memory)
            for part, rows, bad in _run_shards(prefetching, pending, grid, workers, progress, task, batch_size):
                # The sidecars first: a part without them would lose the skip list and which rank wrote it.
                write_json_atomic(part.with_suffix(".skipped.json"), bad)
                write_json_atomic(part.with_suffix(f".rank-{rank}.json"), {"rank": rank, "world_size": world})
                write_table_atomic(part, pd.DataFrame(rows, columns=SAMPLE_COLUMNS), SAMPLE_SCHEMA)
    barrier(world)
    if rank != 0:  # rank 0 merges; the others only wrote their parts
        empty = pd.DataFrame(columns=SAMPLE_COLUMNS)
        return RunOutcome(out, empty, pd.DataFrame(columns=SUMMARY_COLUMNS), {"rank": rank, "skipped_files": {}})
    skipped = collect_skipped(parts_dir, datasets)
    samples = merge_parts(parts_dir, datasets)
    summary = apply_checks(summarise(samples, skipped), samples, diagnostics)
    write_table_atomic(out / "samples.parquet", samples, SAMPLE_SCHEMA)
    write_table_atomic(out / "summary.parquet", summary, SUMMARY_SCHEMA)
    run = {"run_id": run_id, "config": dataclasses.asdict(cfg), "threats": [t.to_dict() for t in threat_specs],
           "datasets": [dataclasses.asdict(d) for d in datasets], "cells": cell_catalogue,
           "class_names": class_names, "logit_scales": logit_scales,
           "device": device_name(device), "seed": cfg.seed, "command": req.command,
           "started": iso_time(started), "finished": iso_time(time.time()), "seconds": round(time.time() - started, 3),
           "skipped_files": skipped, "checks": diagnostics, "probe_sources": probe_sources,
           "checks_not_run": sorted(PROBE_CHECKS) if cfg.probe_samples <= 0 else [], "batch_sizes": batch_sizes, "world_size": world,
           "parts": part_writers(parts_dir, datasets),
           "check_definitions": {k: dataclasses.asdict(v) for k, v in CHECKS.items()}, "provenance": origin}
    write_json_atomic(out / "run.json", run)
    return RunOutcome(out, samples, summary, run)


def _classifier(prompts: list[str], templates: list[str], modality: str, cfg: RunConfig, device, encoder):
    """The zero-shot classifier of one dataset (its classes and templates) for `encoder`."""
    class_emb = build_class_embeddings(encoder, prompts, templates, cache_dir=user_cache_dir() / "text")
    return ZeroShotClassifier(encoder, modality, class_emb.to(device), resolve_logit_scale(cfg.logit_scale, encoder, modality),
                              autocast_dtype=PRECISIONS[cfg.precision]).eval()


def _frozen(encoder, device):
    return encoder.to(device).eval().requires_grad_(False)


def _first_input(dataset) -> torch.Tensor | None:
    for i in range(len(dataset)):
        _, x, _ = dataset[i]
        if x is not None:
            return x
    return None


def corruption_variants(plan: list[tuple[Attack, Cell]], run_seed: int) -> list[Variant]:
    """The corrupted versions of each sample that the plan's corruption cells evaluate, each once."""
    found = [Variant(c.variant, c.severity, a.spec.seed + run_seed) for a, c in plan
             if isinstance(a, CorruptionThreat)]
    return list(dict.fromkeys(found))


def _run_shards(dataset, pending: list[tuple[Path, range]], grid: DatasetGrid, workers: int, progress, task,
                batch_size: int):
    """Yield (part, rows, skipped) per pending shard, in order.

    One loader covers every pending shard, so that workers keep decoding (and prefetching) across shard
    boundaries; no batch spans two shards, so a shard's rows do not depend on which shards were pending."""
    if not pending:
        return
    batches, last_of = [], {}
    for n, (_, indices) in enumerate(pending):
        batches += [list(b) for b in shard_batches(indices, batch_size)]
        last_of[len(batches) - 1] = n
    extra = {"prefetch_factor": PREFETCH_FACTOR, "persistent_workers": False} if workers > 0 else {}
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_with_refs, num_workers=workers,
                        pin_memory=grid.device.type == "cuda", **extra)
    rows: list[dict] = []
    bad: list[str] = []
    # InputSpaceDataset returns dataset-level indices: the rows never depend on batch order.
    for b, (batch_idx, x, failures, refs) in enumerate(loader):
        bad += [f"{grid.samples[i].sample_id}: {err}" for i, err in failures]
        if x is not None:
            t0 = time.time()
            idx = [int(i) for i in batch_idx]
            grid.space.check(x)
            rows += _evaluate_with_backoff(grid, x, idx, refs)
            progress.update(task, len(idx), len(idx) / max(time.time() - t0, 1e-9))
        if b in last_of:
            yield pending[last_of[b]][0], rows, bad
            rows, bad = [], []


def _evaluate_with_backoff(grid: DatasetGrid, x, idx: list[int], refs) -> list[dict]:
    """Evaluate one batch; on GPU out-of-memory, evaluate its two halves instead (recursively), and remember
    the smaller size in ``grid.fits`` so that later batches start there.

    Per-sample seeding makes the rows independent of how the batch is split (batch-dependent attacks aside)."""
    limit = grid.fits[0] if grid.fits else len(idx)
    if len(idx) > limit:
        return [row for i in range(0, len(idx), limit)
                for row in _evaluate_with_backoff(grid, x[i:i + limit], idx[i:i + limit], refs[i:i + limit])]
    try:
        return evaluate_batch(grid, x, idx, refs)
    except torch.cuda.OutOfMemoryError:
        if len(idx) == 1:
            raise
        torch.cuda.empty_cache()
        h = len(idx) // 2
        grid.fits[:] = [min(limit, h)]
        return (_evaluate_with_backoff(grid, x[:h], idx[:h], refs[:h])
                + _evaluate_with_backoff(grid, x[h:], idx[h:], refs[h:]))


def evaluate_batch(grid: DatasetGrid, x, idx: list[int], refs) -> list[dict]:
    """One row per (sample, cell) of the plan, keyed by column name (results/schema.py)."""
    spec, cfg = grid.spec, grid.cfg
    ids = [grid.samples[i].sample_id for i in idx]
    y = torch.tensor([grid.samples[i].label for i in idx], dtype=torch.long)
    x, yd = x.to(grid.device), y.to(grid.device)
    with torch.no_grad():
        clean_logits = grid.classifier(x).float()
    clean_pred = clean_logits.argmax(1).cpu()
    corrupted = PrefetchedCorruptions(grid.cache, refs, tuple(x.shape[1:])) if has_prefetched(refs) else None
    ctx = AttackContext(spec.modality, cfg.seed, ids, clean_logits, grid.space.low, grid.space.high,
                        grid.classifier.num_classes, grid.device, corrupted)
    rows = []
    for attack, cell in grid.plan:
        keep = list(range(len(idx)))
        if grid.subset is not None and attack.on_fixed_subset:
            keep = [j for j in keep if ids[j] in grid.subset]
        if not keep:
            continue
        if len(keep) == len(idx):
            res = attack.run(grid.classifier, x, yd, cell, ctx)
        else:
            sel = torch.tensor(keep, device=x.device)
            res = attack.run(grid.classifier, x[sel], yd[sel], cell, narrow_context(ctx, keep))
        for r, j in enumerate(keep):
            valid, pred = bool(res.valid[r]), int(res.pred[r])
            rows.append({
                "run_id": grid.run_id, "model": cfg.model, "modality": spec.modality, "dataset": spec.name,
                "sample_id": ids[j], "label": int(y[j]), "threat": cell.label, "attack": attack.name,
                "adversarial": attack.adversarial, "norm": cell.norm, "eps": cell.eps, "severity": cell.severity,
                "config_hash": grid.hashes[cell.key], "clean_pred": int(clean_pred[j]), "pred": pred,
                "correct": valid and pred == int(y[j]), "seed": cfg.seed, "attacked": bool(res.attacked[r]),
                "broken_by": res.broken_by[r], "perturbation_norm": float(res.perturbation_norm[r]),
                "margin": float(res.margin[r]), "valid": valid, **res.embedding_columns(r),
                "source_model": attack.source_model,
                "eps_input": cell.eps if res.budget is None else float(res.budget[r])})
    return rows
