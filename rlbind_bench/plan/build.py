"""The cost plan: the run's own grid (threats, datasets, cells, as the runner resolves them), each cell's
passes per sample at most (Attack.pass_budget) and expected (a short probe), priced in FLOPs and seconds.

Three totals: the compute bound (every pass's FLOPs at the device's peak; a floor no run beats), the
worst case (measured seconds per pass, every sample attacked and surviving every step) and the expected
time (passes counted while the real cell runs on a few samples, scaled to the dataset). Nothing is written.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rlbind_bench.batching import resolve_batch_size, resolve_workers, run_batches
from rlbind_bench.config import RunRequest, resolve_datasets
from rlbind_bench.data.readers import InputSpaceDataset, index_dataset, index_named
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.modalities import get_handler
from rlbind_bench.paths import default_data_root
from rlbind_bench.plan.cost import (
    CallGroup,
    PassCost,
    PassCounter,
    bound_passes,
    cost_flops,
    cost_seconds,
    groups_seconds,
    interpolate,
    measure_passes,
)
from rlbind_bench.plan.devices import datasheet_peak, device_peak
from rlbind_bench.plan.measure import process_age_s, started_as_cli
from rlbind_bench.results.provenance import device_name, iso_time
from rlbind_bench.runner import _check_request, _classifier, _frozen, corruption_variants
from rlbind_bench.suites import get_suite, resolve_threats
from rlbind_bench.threats import corruptions
from rlbind_bench.threats.base import AttackContext, AttackSetup, PassCount
from rlbind_bench.threats.checks import probe_budget
from rlbind_bench.threats.pgd import default_step_size, pgd
from rlbind_bench.threats.probes import diagnose
from rlbind_bench.threats.registry import build_plan
from rlbind_bench.threats.subset import fixed_subset

_PROCESS_START_COUNTED: list[bool] = []
PROBE_SAMPLES = 8  # samples the expected cost is measured on
SURVIVAL_SAMPLES = 32  # samples AutoAttack's survivors are estimated on
PROBE_MAX_PASSES = 200  # a cell costing more per sample is not run by the probe: its expected passes are scaled


@dataclass
class CellPlan:
    dataset: str
    modality: str
    cell: str  # the threat label and eps/severity, as the summary shows it
    samples: int
    budget: PassCount  # per sample, at most
    expected: tuple[float, float]  # (forward, forward+backward) per sample, expected
    expected_method: str  # "probe": counted on the probe samples; "scaled": at most x clean accuracy; "at most";
    # "measured": a fixed cost timed by the plan (start-up, decoding, corruptions); "cached": paid already
    call_groups: list[CallGroup] = field(default_factory=list)  # the expected model calls over the whole run
    subset_batch_rows: list[int] | None = None  # a narrowed cell (--autoattack-subset): its rows in each run batch
    seconds: float | None = None  # a measured fixed cost, not priced by passes
    flops: float = 0.0
    worst_s: float = 0.0
    expected_s: float = 0.0


@dataclass
class CostPlan:
    model: str
    device: str
    precision: str
    peak_flops: float | None
    peak_dtype: str
    peak_source: str
    created: str
    target: str | None = None  # planned for this card at its datasheet peak, not measured here
    samples_override: int | None = None  # every dataset priced as if it had this many samples
    cells: list[CellPlan] = field(default_factory=list)
    costs: dict[str, PassCost] = field(default_factory=dict)  # dataset -> its pass cost
    clean_accuracy: dict[str, float] = field(default_factory=dict)  # dataset -> on the probe samples

    @property
    def totals(self) -> dict[str, float | None]:
        flops = sum(c.flops for c in self.cells)
        return {"flops": flops,
                "compute_bound_s": flops / self.peak_flops if self.peak_flops else None,
                "worst_case_s": sum(c.worst_s for c in self.cells),
                "expected_s": sum(c.expected_s for c in self.cells)}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["totals"] = self.totals
        return d


def _probe_inputs(dataset, k: int, among: list[int] | None = None):
    """Up to k readable samples spread over the dataset, or over the indices `among` (folders are read class by
    class: the first k would often be one class): (inputs, labels, ids)."""
    xs, ys, ids = [], [], []
    pool = list(range(len(dataset))) if among is None else among
    n = len(pool)
    spread = [pool[j] for j in sorted({i * n // k for i in range(k)})] if n else []
    chosen = set(spread)
    for i in spread + [i for i in pool if i not in chosen]:
        _, x, _ = dataset[i]
        if x is not None:
            s = dataset.index.samples[i]
            xs.append(x)
            ys.append(s.label)
            ids.append(s.sample_id)
        if len(xs) == k:
            break
    return (torch.stack(xs), torch.tensor(ys), ids) if xs else (None, None, [])


def _at_most_groups(forward: float, backward: float, batch_rows: list[int]) -> list[CallGroup]:
    """`forward` and `backward` calls per batch, each on the batch's every row."""
    n, k = sum(batch_rows), len(batch_rows)
    return [CallGroup(False, forward * k, forward * n), CallGroup(True, backward * k, backward * n)]


def _expected(attack, cell, budget: PassCount, inputs, ctx: AttackContext, clean_ok: float, batch_rows: list[int],
              probe: bool = True, survivors=None, num_classes: int = 2):
    """(expected passes per sample, how they were estimated, the expected model calls over the run).
    batch_rows: the rows the cell gets in each of the run's batches (the run's batches, or the part of each
    that falls in --autoattack-subset: a narrowed cell runs once per batch on a few rows)."""
    n = sum(batch_rows)
    total = budget.forward + budget.backward + budget.source_forward + budget.source_backward
    if not attack.adversarial:
        return (float(budget.forward), float(budget.backward)), "at most", _at_most_groups(budget.forward,
                                                                                          budget.backward, batch_rows)
    if probe and total <= PROBE_MAX_PASSES and not (budget.source_forward or budget.source_backward):
        model, x, y = inputs
        counter = PassCounter(model)
        attack.run(counter, x, y, cell, ctx)
        fwd, bwd = counter.per_sample(len(x))
        calls_f, calls_b = counter.calls  # per batch: a run's batch makes about as many calls as the probe's
        k = len(batch_rows)
        return (fwd, bwd), "probe", [CallGroup(False, calls_f * k, fwd * n), CallGroup(True, calls_b * k, bwd * n)]
    # Too long to run here (AutoAttack), or on another model: the attacks skip samples misclassified clean, and
    # each later stage (sub-attack) runs on the samples still robust, estimated by a short PGD. A batch makes a
    # stage's calls if any of its rows is left, each call carrying the rows left.
    stages = attack.stage_budgets(cell, num_classes)
    if survivors is not None and len(stages) > 1 and not attack.eps_unit:
        clean_ok, robust = survivors(attack, cell)
    else:
        robust = clean_ok
    outside = _outside_seconds(attack, cell, num_classes, inputs, ctx, batch_rows, clean_ok) if probe else None
    fwd = bwd = 0.0
    groups = []
    for k, stage in enumerate(stages):
        share = clean_ok if k == 0 else robust
        busy = sum(1.0 - (1.0 - share) ** m for m in batch_rows)
        f, b = stage.forward + stage.source_forward, stage.backward + stage.source_backward
        fwd, bwd = fwd + f * share, bwd + b * share
        rows_per_call = share * n / busy if busy else 0.0
        o = outside[k](rows_per_call) if outside else 0.0
        groups += [CallGroup(False, f * busy, f * share * n, o), CallGroup(True, b * busy, b * share * n, o)]
    return (fwd, bwd), "scaled", groups


def _outside_seconds(attack, cell, num_classes: int, inputs, ctx: AttackContext, batch_rows: list[int],
                     clean_ok: float):
    """Per stage, rows per call -> seconds per call outside the model: timed at one row and at the most rows a
    call of the cell carries (the clean-correct share of its largest batch), a line between them; None for
    attacks that declare none."""
    x = inputs[1]
    big = max(1, round(max(batch_rows, default=1) * clean_ok))
    one = attack.stage_outside_seconds(cell, num_classes, x, ctx.low, ctx.high, ctx.device, 1)
    if one is None:
        return None
    many = attack.stage_outside_seconds(cell, num_classes, x, ctx.low, ctx.high, ctx.device, big) if big > 1 else one
    sizes = (1, big) if big > 1 else (1,)
    return [functools.partial(interpolate, sizes, (a, b)[:len(sizes)]) for a, b in zip(one, many, strict=True)]


def _subset_rows(index, layout: list[range], n: int, subset: int, priced_as: int | None) -> list[int]:
    """Rows of --autoattack-subset in each of the run's batches: the subset's own ids, or, when the plan prices a
    sample count the dataset does not have (--plan-samples), the subset spread evenly over it."""
    if priced_as is None:
        ids = [s.sample_id for s in index.samples]
        chosen = fixed_subset(ids, subset)
        return [sum(ids[i] in chosen for i in b) for b in layout]
    k = min(subset, n)
    positions = {i * n // k for i in range(k)}
    return [sum(i in positions for i in b) for b in layout]


def _short_attack_survivors(model, dataset, subset: frozenset | None, space, device, seed: int):
    """(attack, cell) -> (clean-correct share, share a PGD-20 at the cell's norm and eps leaves correct), on up to
    SURVIVAL_SAMPLES of the cell's own samples (the --autoattack-subset's for a narrowed cell): the shares of
    samples AutoAttack's first sub-attack and its later ones run on. APGD-CE, the first, is at least as strong
    as PGD-20, so the later ones are over-counted, never under-counted.

    Eight spread probe samples were too few: on the demo's spoken digits and videos they gave 0.75 and 0.88
    clean and 0.12 robust, where the 25-sample subset had 0.52 and 0.80 clean and 0.08 and 0.60 left after
    APGD-CE; PGD-20 on the subset left 0.16 and 0.60. (The reference's APGD-CE cut to 20 iterations was tried
    instead and left 0.28 on the digits: further off.) PGD-20 costs at most 20 forward+backward passes a
    sample, under 1% of AutoAttack standard's, so the estimate stays small beside the cell it prices."""
    among = None if subset is None else [i for i, s in enumerate(dataset.index.samples) if s.sample_id in subset]
    inputs = functools.cache(lambda narrowed: _probe_inputs(dataset, SURVIVAL_SAMPLES, among if narrowed else None))
    found: dict[tuple, tuple[float, float]] = {}

    def survivors(attack, cell) -> tuple[float, float]:
        narrowed = attack.on_fixed_subset and among is not None
        key = (cell.norm, cell.eps, narrowed)
        if key not in found:
            x, y, ids = inputs(narrowed)
            if x is None:
                return 0.0, 0.0
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                clean_ok = model(x).float().argmax(1) == y
            _, broken = pgd(model, x, y, eps=cell.eps, norm=cell.norm, steps=20,
                            step_size=default_step_size(cell.eps, 20), low=space.low, high=space.high, ids=ids,
                            seed=seed, salt="plan-survivors")
            found[key] = float(clean_ok.float().mean()), float((clean_ok & ~broken).float().mean())
        return found[key]

    return survivors


def plan_run(req: RunRequest, probe_samples: int = PROBE_SAMPLES, reps: int = 3, target: str | None = None,
             samples: int | None = None) -> CostPlan:
    """The cost plan of `req`: resolves it as run_evaluation does, measures, runs no grid, writes nothing.

    `target` (a card of devices.PEAK_TFLOPS) plans for a device this machine does not have: FLOPs are counted
    here, every pass is priced at the card's datasheet peak (so the worst case equals the compute bound and the
    expected time is the expected passes at the bound), and no cell is probed (expected = at most x clean
    accuracy). `samples` prices every dataset as if it had that many samples (sizing a run on data not here)."""
    # Before any work of this plan: what a run's process pays before its first line (once per process: a second
    # plan in the same command, `--model 'demo/*'`, would count the first one's time).
    imports_s = process_age_s() if not _PROCESS_START_COUNTED else None
    _PROCESS_START_COUNTED.append(True)
    cfg = _check_request(req.config)
    device = torch.device(cfg.device)
    started = time.perf_counter()
    threat_specs = resolve_threats(cfg, req.attacks_dir)
    suite = get_suite(cfg.suite)
    n_samples = cfg.n_samples if cfg.n_samples is not None else suite.n_samples
    torch.manual_seed(cfg.seed)
    encoder = _frozen(req.encoder if req.encoder is not None else load_encoder(cfg.model), device)
    fingerprint = encoder.fingerprint() if not target else ""  # the runner hashes the weights too
    startup_s = time.perf_counter() - started
    datasets = resolve_datasets(req, encoder)
    data_root = req.data_root or default_data_root()
    other_models = functools.cache(lambda name: (lambda e: (e, e.fingerprint()))(_frozen(load_encoder(name), device)))
    named_index = functools.cache(functools.partial(index_named, data_root=data_root, datasets_file=req.datasets_file,
                                                    dataset_paths=req.dataset_paths))
    peak = datasheet_peak(target, cfg.precision) if target else device_peak(device, cfg.precision)
    if target:
        target = peak.source.removeprefix("datasheet ")  # the table's spelling of the card
    plan = CostPlan(cfg.model, target or device_name(device), cfg.precision, peak.flops, peak.dtype, peak.source,
                    iso_time(time.time()), target, samples)
    workers = resolve_workers(cfg.workers, device)
    for spec in datasets:
        index = index_dataset(spec, data_root, n_samples)
        hints = get_handler(spec.modality).input_hints(index)
        space = encoder.input_space(spec.modality, **hints)
        classifier_for = functools.partial(_classifier, index.prompts, spec.template_list(), spec.modality, cfg,
                                           device)
        classifier = classifier_for(encoder)
        grid = build_plan(threat_specs, AttackSetup(spec.modality, space, hints, device, other_models,
                                                    classifier_for, encoder, index.classnames, named_index))
        dataset = InputSpaceDataset(index, encoder.preprocess_config(spec.modality), hints)
        t0 = time.perf_counter()
        x, y, ids = _probe_inputs(dataset, probe_samples)
        decode_s = (time.perf_counter() - t0) / max(1, len(ids))
        if not grid or x is None:
            continue
        x, y = x.to(device), y.to(device)
        n = samples if samples is not None else len(index.samples)
        adversarial = any(a.adversarial for a, _ in grid)
        batch_size = resolve_batch_size(cfg.batch_size, classifier, lambda x=x: x[0].cpu(), device, n_samples=n,
                                        needs_grad=adversarial, batch_dependent=any(a.batch_dependent for a, _ in grid),
                                        in_flight_batches=workers * 2 + 2)
        cost = (bound_passes(classifier, x, batch_size, peak.flops) if target
                else measure_passes(classifier, x, batch_size, device, reps))
        plan.costs[spec.name] = cost
        layout = run_batches(n, batch_size)
        full_rows = [len(b) for b in layout]
        subset_rows = (None if cfg.autoattack_subset is None
                       else _subset_rows(index, layout, n, cfg.autoattack_subset, samples))
        with torch.no_grad():
            clean = classifier(x).float()
        clean_ok = float((clean.argmax(1) == y).float().mean())
        plan.clean_accuracy[spec.name] = clean_ok
        ctx = AttackContext(spec.modality, cfg.seed, ids, clean, space.low, space.high, index.num_classes, device)
        survivors = None if target else _short_attack_survivors(
            classifier, dataset, fixed_subset([s.sample_id for s in index.samples], cfg.autoattack_subset)
            if cfg.autoattack_subset is not None and samples is None else None, space, device, cfg.seed)
        rows = [] if plan.cells or target else [_fixed(spec, "start-up (model load, weight hash)", 1, startup_s)]
        if not plan.cells and not target and imports_s is not None and started_as_cli():
            rows.insert(0, _fixed(spec, "process start (interpreter, imports)", 1, imports_s))
        if not target:
            rows.append(_fixed(spec, "input decoding", n, decode_s * n))
            variants = corruption_variants(grid, cfg.seed)
            if variants:
                rows.append(_fixed(spec, f"corruptions made ({len(variants)} variants)", n,
                                   n * _corruption_seconds(spec.modality, variants, x[0].cpu(), ids[0])))
        rows.append(CellPlan(spec.name, spec.modality, "clean logits (shared)", n, PassCount(forward=1), (1.0, 0.0),
                             "at most", _at_most_groups(1, 0, full_rows)))
        if adversarial and cfg.probe_samples > 0:  # the sanity probes, once per dataset (threats/probes.py)
            rows.append(_probe_row(spec, dataset, classifier, grid, cfg, device, space, n, fingerprint,
                                   run_here=not target))
        for attack, cell in grid:
            budget = attack.pass_budget(cell, index.num_classes)
            narrowed = attack.on_fixed_subset and subset_rows is not None
            batch_rows = subset_rows if narrowed else full_rows
            expected, how, groups = _expected(attack, cell, budget, (classifier, x, y), ctx, clean_ok, batch_rows,
                                              probe=not target, survivors=survivors, num_classes=index.num_classes)
            rows.append(CellPlan(spec.name, spec.modality, _cell_label(attack, cell), sum(batch_rows), budget,
                                 expected, how, groups, subset_batch_rows=batch_rows if narrowed else None))
        for r in rows:
            r.flops = cost_flops(r.budget, r.samples, cost)
            if r.seconds is not None:
                r.worst_s = r.expected_s = r.seconds
                continue
            r.worst_s = cost_seconds(r.budget, r.samples, cost)
            r.expected_s = 0.0 if r.expected_method == "cached" else groups_seconds(r.call_groups, cost)
        plan.cells += rows
    return plan


def _fixed(spec, label: str, samples: int, seconds: float) -> CellPlan:
    return CellPlan(spec.name, spec.modality, label, samples, PassCount(), (0.0, 0.0), "measured", seconds=seconds)


def _corruption_seconds(modality: str, variants, x: torch.Tensor, sample_id: str) -> float:
    """Seconds to make every variant of one sample (the runner makes them per sample, in the loader)."""
    t0 = time.perf_counter()
    for v in variants:
        corruptions.corrupt(modality, v.name, v.severity, x, seed=v.seed, sample_id=sample_id)
    return time.perf_counter() - t0


def _probe_row(spec, dataset, classifier, grid, cfg, device, space, n: int, fingerprint: str,
               run_here: bool) -> CellPlan:
    """The probes' row. Planning on this device, the plan runs them itself (their result goes to the user cache,
    where the run finds it: nothing left for the run, and the plan's own time shows what they cost); for another
    card their budget on min(--probe-samples, n) inputs is priced."""
    label_free = any(a.label_free for a, _ in grid)
    norm = next(c.norm for a, c in grid if a.adversarial)
    probes = probe_budget(label_free=label_free)
    k = min(cfg.probe_samples, n)
    if not run_here:
        return CellPlan(spec.name, spec.modality, "sanity probes (threats/probes.py)", k, probes,
                        (float(probes.forward), float(probes.backward)), "at most",
                        _at_most_groups(probes.forward, probes.backward, [k]))
    with tempfile.TemporaryDirectory() as tmp:
        result, source = diagnose(dataset, classifier, space, device, resume_file=Path(tmp) / "probes.json",
                                  fingerprint=fingerprint, norm=norm, label_free=label_free, samples=k,
                                  precision=cfg.precision)
    how = "already cached" if source == "user cache" else "run by this plan"
    return CellPlan(spec.name, spec.modality, f"sanity probes ({how}; cached for the run)", result.get("n", k),
                    probes, (0.0, 0.0), "cached")


def _cell_label(attack, cell) -> str:
    if cell.severity:
        return f"{cell.label} sev {cell.severity}"
    if not attack.adversarial:
        return cell.label
    if attack.eps_unit:
        return f"{cell.label} {cell.norm} {cell.eps:g} {attack.eps_unit}"
    return f"{cell.label} {cell.norm} " + (f"{cell.eps * 255:.3g}/255" if cell.norm == "Linf" else f"{cell.eps:.3g}")
