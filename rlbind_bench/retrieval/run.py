"""Retrieval under attack: for each set and pair (query modality : gallery modality), R@1/5/10 and mAP, clean and
with PGD on the query side or the gallery side at each eps. Writes retrieval.parquet, retrieval_summary.parquet
and run.json (kind "retrieval") atomically.

The clean embeddings of every modality are computed once; an attacked cell re-embeds only the perturbed side.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from rlbind_bench.constants import LOGIT_SCALE
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.files import write_json_atomic
from rlbind_bench.hashing import config_hash
from rlbind_bench.paths import default_data_root
from rlbind_bench.results.provenance import device_name, iso_time, provenance
from rlbind_bench.results.store import check_writable, write_table_atomic
from rlbind_bench.retrieval.attack import SIDES, RetrievalAttack, perturb
from rlbind_bench.retrieval.embed import Side, embed_attacked, embed_clean
from rlbind_bench.retrieval.layouts import RetrievalIndex, Where, index_retrieval
from rlbind_bench.retrieval.metrics import rank_queries, summarise_ranks
from rlbind_bench.retrieval.spec import TEXT, RetrievalSpec, resolve_sets
from rlbind_bench.retrieval.tables import (
    ROW_COLUMNS,
    ROW_SCHEMA,
    ROWS_FILE,
    SUMMARY_COLUMNS,
    SUMMARY_FILE,
    SUMMARY_SCHEMA,
)
from rlbind_bench.threats.base import Cell
from rlbind_bench.threats.registry import check_eps_budget

log = logging.getLogger(__name__)
RUN_KIND = "retrieval"  # run.json's `kind`: what tells a retrieval folder from a classification one
NOT_NUMERIC = ("batch_size", "device", "allow_large_eps")


@dataclass
class RetrievalConfig:
    model: str
    datasets: list[str]
    pairs: list[str] | None = None  # "query:gallery"; None: every ordered pair of the set's modalities
    eps: list[float] = field(default_factory=lambda: [0.0])  # 0 (clean) is always evaluated
    sides: list[str] = field(default_factory=lambda: ["query"])
    norm: str = "Linf"
    steps: int = 10
    step_size: float | None = None
    loss: str = "ce"
    seed: int = 0
    random_start: bool = True
    n_items: int | None = None  # per media modality, a fixed subset (smallest id hashes)
    logit_scale: float = LOGIT_SCALE
    batch_size: int = 32
    device: str = "cpu"
    allow_large_eps: bool = False

    def attack(self, eps: float) -> RetrievalAttack:
        try:
            return RetrievalAttack(eps=eps, norm=self.norm, steps=self.steps, step_size=self.step_size,
                                   loss=self.loss, seed=self.seed, random_start=self.random_start,
                                   logit_scale=self.logit_scale)
        except ValueError as exc:
            raise ConfigError(f"retrieval attack: {exc}") from exc


@dataclass
class RetrievalRequest:
    config: RetrievalConfig
    out: Path
    data_root: Path | None = None
    datasets_file: Path | None = None
    dataset_paths: dict[str, str] = field(default_factory=dict)
    encoder: object | None = None  # a pre-built BoundEncoder (tests); else built from config.model
    command: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class RetrievalOutcome:
    out: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    run: dict


def parse_pair(text: str) -> tuple[str, str]:
    q, sep, g = text.partition(":")
    if not sep or not q or not g or q == g:
        raise ConfigError(f"--pairs: expected QUERY:GALLERY of two different modalities (e.g. audio:image), got {text!r}")
    return q.strip(), g.strip()


def _check(cfg: RetrievalConfig) -> list[float]:
    bad = [s for s in cfg.sides if s not in SIDES]
    if bad or not cfg.sides:
        raise ConfigError(f"--side must be among {', '.join(SIDES)}, got {', '.join(bad) or 'nothing'}")
    if cfg.n_items is not None and cfg.n_items < 1:
        raise ConfigError("--n-items must be >= 1")
    if cfg.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    for p in cfg.pairs or []:
        parse_pair(p)
    eps = sorted({float(e) for e in cfg.eps} - {0.0})
    for e in eps:
        cfg.attack(e)  # refuses a negative eps, an unknown norm or loss, steps < 1
    return eps


def _pairs_of(spec: RetrievalSpec, cfg: RetrievalConfig, encoder) -> list[tuple[str, str]]:
    held = [m for m in spec.modalities() if m == TEXT or m in encoder.modalities]
    if cfg.pairs is None:
        return [(q, g) for q in held for g in held if q != g]
    pairs = [parse_pair(p) for p in cfg.pairs]
    for q, g in pairs:
        for m in (q, g):
            if m != TEXT:
                encoder.require(m)
    return [(q, g) for q, g in pairs if q in held and g in held]


def _check_paths(specs: list[RetrievalSpec], paths: dict[str, str]) -> None:
    known = {s.name for s in specs} | {m for s in specs if s.members for m in s.members.values()}
    for name, path in paths.items():
        if name not in known:
            raise UserError(f"--dataset-path {name}=...: {name} is neither a chosen retrieval set nor one of their "
                            f"members ({', '.join(sorted(known))})")
        if not Path(path).expanduser().is_dir():
            raise UserError(f"--dataset-path {name}={path}: folder does not exist")


def run_retrieval(req: RetrievalRequest) -> RetrievalOutcome:
    cfg = req.config
    attack_eps = _check(cfg)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda given but no CUDA device is available")
    out = Path(req.out)
    if (out / "summary.parquet").exists():
        raise UserError(f"{out} holds classification results (summary.parquet): give retrieval another --out")
    check_writable(out)
    started = time.time()
    origin = provenance()  # the commit that ran, not the one checked out at the end
    specs = resolve_sets(cfg.datasets, req.dataset_paths, req.datasets_file)
    _check_paths(specs, req.dataset_paths)
    encoder = req.encoder if req.encoder is not None else load_encoder(cfg.model)
    encoder = encoder.to(device).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    plan = {spec.name: _pairs_of(spec, cfg, encoder) for spec in specs}
    if cfg.pairs and not any(plan.values()):
        raise UserError(f"no chosen set holds the pairs {', '.join(cfg.pairs)} (sets: "
                        + "; ".join(f"{s.name}: {', '.join(s.modalities())}" for s in specs) + ")")
    fingerprint = encoder.fingerprint()
    identity = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_NUMERIC}
    run_id = config_hash({"config": identity, "fingerprint": fingerprint, "kind": RUN_KIND})[:12]
    data_root = req.data_root or default_data_root()
    where = Where(dict(req.dataset_paths), req.datasets_file)
    rows, summary, skipped, notes, counts = [], [], {}, [], {}
    for spec in specs:
        if not plan[spec.name]:
            notes.append(f"{spec.name}: no requested pair; skipped")
            continue
        index = index_retrieval(spec, data_root, where, cfg.n_items)
        used = sorted({m for pair in plan[spec.name] for m in pair})
        sides = _sides(encoder, index, used, skipped, cfg.batch_size, device)
        counts[spec.name] = {m: len(s.items) for m, s in sides.items()}
        for q, g in plan[spec.name]:
            grid = PairGrid(spec, q, g, sides[q], sides[g], sides[q].embeddings, sides[g].embeddings, cfg, run_id,
                            fingerprint)
            notes += grid.evaluate(encoder, attack_eps, device, rows, summary)
    rows_df = pd.DataFrame(rows, columns=ROW_COLUMNS)
    summary_df = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    write_table_atomic(out / ROWS_FILE, rows_df, ROW_SCHEMA)
    write_table_atomic(out / SUMMARY_FILE, summary_df, SUMMARY_SCHEMA)
    run = {"kind": RUN_KIND, "run_id": run_id, "config": dataclasses.asdict(cfg),
           "attack": {"method": "pgd (threats/pgd.pgd_maximise), per-item random start seeded by (seed, item id, "
                                "cell)", "norm": cfg.norm, "steps": cfg.steps, "loss": cfg.loss, "seed": cfg.seed,
                      "random_start": cfg.random_start, "sides": cfg.sides, "logit_scale": cfg.logit_scale,
                      "step_size": {f"{e:.8g}": cfg.attack(e).effective_step_size for e in attack_eps}},
           "datasets": [dataclasses.asdict(s) for s in specs], "plan": {k: [f"{q}:{g}" for q, g in v]
                                                                        for k, v in plan.items()},
           "relevance": {s.name: s.relevance for s in specs}, "items": counts,
           "metrics": "R@K: share of queries whose best-ranked relevant item is within the top K (95% Wilson "
                      "interval); mAP: mean over queries of average precision over all relevant items (95% "
                      "normal interval); ties in score rank non-relevant items first",
           "notes": notes, "skipped_files": skipped, "device": device_name(device), "seed": cfg.seed,
           "command": req.command, "started": iso_time(started), "finished": iso_time(time.time()),
           "seconds": round(time.time() - started, 3), "provenance": origin}
    write_json_atomic(out / "run.json", run)
    return RetrievalOutcome(out, rows_df, summary_df, run)


def _sides(encoder, index: RetrievalIndex, used: list[str], skipped: dict, batch_size: int, device) -> dict[str, Side]:
    """The clean side of each used modality, embedded; unreadable files are skipped and listed in `skipped`."""
    sides = {}
    for m in used:
        hints = index.hints.get(m, {})
        space = None if m == TEXT else encoder.input_space(m, **hints)
        side = Side(m, list(index.items[m]), space, hints)
        bad = embed_clean(encoder, side, batch_size, device)
        if bad:
            skipped.setdefault(index.spec.name, []).extend(bad)
        if not side.items:
            raise UserError(f"retrieval set {index.spec.name}: no readable {m} item")
        sides[m] = side
    return sides


@dataclass
class PairGrid:
    """One (set, query modality, gallery modality): its clean cell and its attacked cells."""

    spec: RetrievalSpec
    q: str
    g: str
    qside: Side
    gside: Side
    zq: torch.Tensor
    zg: torch.Tensor
    cfg: RetrievalConfig
    run_id: str
    fingerprint: str

    def evaluate(self, encoder, attack_eps: list[float], device, rows: list, summary: list) -> list[str]:
        relevant = self.qside.groups[:, None] == self.gside.groups[None, :]
        keep = relevant.any(1)
        notes = []
        if not keep.all():
            notes.append(f"{self.spec.name} {self.q}:{self.g}: {int((~keep).sum())} queries without a relevant "
                         "gallery item left out")
        self.relevant, self.keep = relevant, keep
        self._record("none", 0.0, self.zq, self.zg, 0.0, rows, summary)
        for side in self.cfg.sides:
            attacked = self.qside if side == "query" else self.gside
            if attacked.modality == TEXT:
                notes.append(f"{self.spec.name} {self.q}:{self.g}: the {side} side is text, which has no input "
                             "space to perturb; no attacked cell")
                continue
            for eps in attack_eps:
                attack = self.cfg.attack(eps)
                if not self.cfg.allow_large_eps:
                    check_eps_budget(Cell("retrieval", norm=attack.norm, eps=eps), attacked.space,
                                     f"retrieval {self.q}:{self.g} {side} side")
                z_adv, largest = self._attack(encoder, side, attacked, attack, device)
                zq, zg = (z_adv, self.zg) if side == "query" else (self.zq, z_adv)
                self._record(side, eps, zq, zg, largest, rows, summary)
        return notes

    def _attack(self, encoder, side: str, attacked: Side, attack: RetrievalAttack, device):
        rel = self.relevant if side == "query" else self.relevant.T
        others = self.zg if side == "query" else self.zq
        salt = f"retrieval|{self.spec.name}|{self.q}:{self.g}|{side}|{attack.norm}|{attack.eps:.8g}"
        ids = attacked.ids

        def perturb_batch(x, idx):
            return perturb(encoder, attacked.modality, x, [ids[i] for i in idx], rel[idx], others, attack,
                           attacked.space.low, attacked.space.high, salt)

        return embed_attacked(encoder, attacked, self.cfg.batch_size, device, attack.norm, perturb_batch)

    def _hash(self, side: str, eps: float) -> str:
        attack = dataclasses.asdict(self.cfg.attack(eps)) if side != "none" else None
        return config_hash({"fingerprint": self.fingerprint, "dataset": dataclasses.asdict(self.spec),
                            "pair": f"{self.q}:{self.g}", "side": side, "attack": attack,
                            "step_size": self.cfg.attack(eps).effective_step_size if attack else None,
                            "queries": config_hash({"ids": self.qside.ids}),
                            "gallery": config_hash({"ids": self.gside.ids})})

    def _record(self, side, eps, zq, zg, largest, rows, summary) -> None:
        scores = (zq[self.keep] @ zg.T).double().numpy()
        ranks = rank_queries(scores, self.relevant[self.keep].numpy())
        cell = {"run_id": self.run_id, "model": self.cfg.model, "dataset": self.spec.name,
                "pair": f"{self.q}:{self.g}", "query_modality": self.q, "gallery_modality": self.g, "side": side,
                "norm": self.cfg.norm if side != "none" else "", "eps": float(eps),
                "steps": self.cfg.steps if side != "none" else 0, "seed": self.cfg.seed,
                "config_hash": self._hash(side, eps)}
        ids = [i for i, k in zip(self.qside.ids, self.keep.tolist(), strict=True) if k]
        n_gallery = len(self.gside.items)
        for j, qid in enumerate(ids):
            first = int(ranks.first_rank[j])
            rows.append({**cell, "query_id": qid, "n_relevant": int(ranks.n_relevant[j]), "n_gallery": n_gallery,
                         "first_rank": first, "ap": float(ranks.ap[j]), "r1": first <= 1, "r5": first <= 5,
                         "r10": first <= 10})
        summary.append({**cell, "relevance": "class" if self.spec.layout == "classes" else "paired",
                        "n_gallery": n_gallery, **summarise_ranks(ranks.first_rank, ranks.ap),
                        "max_perturbation": float(largest)})
