"""`rlbind-bench retrieve`: retrieval (text<->X, X<->Y) clean and under PGD on the query or gallery side."""

from __future__ import annotations

from pathlib import Path

from rlbind_bench.cli.console import EXIT_OK, console, csv, eps_list, key_value
from rlbind_bench.constants import LOGIT_SCALE
from rlbind_bench.errors import UserError
from rlbind_bench.files import slugify


def add_retrieve(sub) -> None:
    p = sub.add_parser("retrieve", help="retrieval R@1/5/10 and mAP, clean and attacked -> Parquet")
    p.add_argument("--model", required=True, help="registered name, checkpoint folder or MODALITY=PATH,...")
    p.add_argument("--datasets", type=csv, required=True,
                   help="retrieval sets of datasets.yaml (task: retrieval), e.g. demo-digits-retrieval")
    p.add_argument("--pairs", type=csv, default=None,
                   help="QUERY:GALLERY modality pairs, e.g. audio:image,text:image (default: every ordered pair "
                        "of a set's modalities)")
    p.add_argument("--eps", type=eps_list, default=[0.0],
                   help="L-inf (or --norm L2) budgets in each modality's input space, e.g. 0,1/255,4/255 (0, "
                        "clean, is always evaluated)")
    p.add_argument("--side", type=csv, default=["query"], help="side(s) the attack perturbs: query, gallery or "
                   "query,gallery (a text side is never perturbed: it has no input space)")
    p.add_argument("--norm", choices=["Linf", "L2"], default="Linf")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--step-size", type=float, default=None, help="PGD step (default 2.5 * eps / steps)")
    p.add_argument("--loss", choices=["ce", "sim"], default="ce",
                   help="ce: contrastive cross-entropy over the other side, relevant items as targets (default); "
                        "sim: mean similarity to the relevant items")
    p.add_argument("--no-random-start", action="store_true", help="start PGD at the clean input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-items", type=int, default=None,
                   help="per media modality, a fixed subset of this many items (and their captions)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--logit-scale", type=float, default=LOGIT_SCALE, help="temperature of the ce loss")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--datasets-file", type=Path, default=None, help="your own dataset catalogue (YAML)")
    p.add_argument("--dataset-path", type=key_value, action="append", default=[], metavar="NAME=PATH",
                   help="read set (or member dataset) NAME from your copy at PATH (repeatable)")
    p.add_argument("--allow-large-eps", action="store_true",
                   help="run eps budgets that cover the input box (L-inf >= half its range)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: runs/<model>-retrieval)")
    p.set_defaults(func=cmd_retrieve)


def cmd_retrieve(args) -> int:
    from rlbind_bench.retrieval.run import RetrievalConfig, RetrievalRequest, run_retrieval

    paths = dict(args.dataset_path)
    if len(paths) != len(args.dataset_path):
        raise UserError("--dataset-path: each dataset may be given once")
    cfg = RetrievalConfig(model=args.model, datasets=args.datasets, pairs=args.pairs, eps=args.eps, sides=args.side,
                          norm=args.norm, steps=args.steps, step_size=args.step_size, loss=args.loss, seed=args.seed,
                          random_start=not args.no_random_start, n_items=args.n_items,
                          logit_scale=args.logit_scale, batch_size=args.batch_size, device=args.device,
                          allow_large_eps=args.allow_large_eps)
    out = args.out or Path("runs") / f"{slugify(args.model, fallback='model')}-retrieval"
    outcome = run_retrieval(RetrievalRequest(cfg, out, data_root=args.data_root, datasets_file=args.datasets_file,
                                             dataset_paths=paths))
    render_retrieval(outcome.summary, args.model)
    for note in outcome.run["notes"]:
        console().print(f"[yellow]note:[/] {note}", markup=True, highlight=False)
    skipped = sum(len(v) for v in outcome.run["skipped_files"].values())
    if skipped:
        console().print(f"[yellow]{skipped} unreadable file(s) skipped; listed in {out / 'run.json'}[/]")
    console().print(f"results: {out / 'retrieval.parquet'}, {out / 'retrieval_summary.parquet'}, {out / 'run.json'}",
                    markup=False)
    return EXIT_OK


def render_retrieval(summary, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(title)} retrieval (class: every same-class item is relevant; paired: own captions)")
    for col in ("dataset", "pair", "relevance", "attack", "n", "R@1", "R@5", "R@10", "mAP"):
        table.add_column(col, justify="right" if col in ("n", "R@1", "R@5", "R@10", "mAP") else "left")
    for r in summary.itertuples():
        attack = "clean" if r.side == "none" else f"{r.side} {r.norm} {r.eps * 255:.3g}/255" if r.norm == "Linf" \
            else f"{r.side} {r.norm} {r.eps:.3g}"
        table.add_row(escape(r.dataset), escape(r.pair), r.relevance, escape(attack), str(r.n_queries),
                      f"{r.r1:.3f}", f"{r.r5:.3f}", f"{r.r10:.3f}", f"{r.map:.3f}")
    console().print(table)
