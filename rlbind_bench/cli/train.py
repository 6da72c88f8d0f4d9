"""`rlbind-bench train`: flags -> recipe overrides -> rlbind_bench.train.api.train, then the loss history."""

from __future__ import annotations

from pathlib import Path

from rlbind_bench.cli.console import EXIT_OK, console, csv, eps_list, key_value
from rlbind_bench.errors import UserError


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a hardened encoder from a recipe (recipes/*.yaml: backbone, fare, tecoa, pmg-aft, rlbind, ...)")
    p.add_argument("--recipe", required=True, help="a name in recipes/ or a YAML path")
    p.add_argument("--init", required=True, help="model spec to start from (as for run --model)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset-dir", type=key_value, action="append", default=[], metavar="MODALITY=PATH")
    p.add_argument("--datasets", type=csv, default=None, help="names from datasets.yaml (their --split is used)")
    p.add_argument("--split", default="train")
    p.add_argument("--templates", action="append", default=None)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--max-samples", type=int, default=None, help="per modality")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--eps", type=eps_list, default=None, help="training attack eps (one value)")
    p.add_argument("--attack-steps", type=int, default=None)
    p.add_argument("--attack-step-size", type=eps_list, default=None)
    p.add_argument("--trainable", default=None,
                   help="tower | projection | lora (peft LoRA adapters on each tower, merged into the saved weights)")
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank (recipe lora.r, default 8)")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA scale numerator (lora.alpha, default 16)")
    p.add_argument("--lora-targets", type=csv, default=None,
                   help="module names to adapt inside each tower (default: the backend's, e.g. q_proj,k_proj,v_proj,"
                        "out_proj for LanguageBind)")
    p.add_argument("--modalities", type=csv, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--weight", action="append", default=[], type=key_value, metavar="NAME=VALUE",
                   help="override a loss weight of the recipe (e.g. align=0), repeatable")
    p.add_argument("--align-weight", type=float, default=None, help="shorthand for --weight align=X")
    p.add_argument("--mmd-weight", type=float, default=None, help="shorthand for --weight mmd=X")
    p.add_argument("--learn-temperature", choices=["true", "false"], default=None,
                   help="train the logit scale with the towers (recipe learn_temperature; backbone: true)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from rlbind_bench.train.api import TrainRequest, train
    from rlbind_bench.train.recipes import load_recipe

    def one(values, flag):
        if values is None:
            return None
        if len(values) != 1:
            raise UserError(f"{flag} takes one value")
        return values[0]

    overrides = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "trainable": args.trainable,
                 "checkpoint_every": args.checkpoint_every,
                 "learn_temperature": None if args.learn_temperature is None else args.learn_temperature == "true",
                 "modalities": tuple(args.modalities) if args.modalities else None,
                 "optim.lr": args.lr, "optim.weight_decay": args.weight_decay, "optim.warmup": args.warmup,
                 "attack.eps": one(args.eps, "--eps"), "attack.steps": args.attack_steps,
                 "attack.step_size": one(args.attack_step_size, "--attack-step-size"),
                 "lora.r": args.lora_r, "lora.alpha": args.lora_alpha,
                 "lora.target_modules": tuple(args.lora_targets) if args.lora_targets else None}
    try:
        weights = {k: float(v) for k, v in args.weight}
    except ValueError:
        raise UserError("--weight takes NAME=NUMBER") from None
    if args.align_weight is not None:
        weights["align"] = args.align_weight
    if args.mmd_weight is not None:
        weights["mmd"] = args.mmd_weight
    if weights:
        overrides["weights"] = {**load_recipe(args.recipe).weights, **weights}
    dirs = dict(args.dataset_dir)
    for modality, path in dirs.items():
        if not Path(path).expanduser().is_dir():
            raise UserError(f"--dataset-dir {modality}={path}: folder does not exist")
    card = train(TrainRequest(recipe=args.recipe, init=args.init, out=args.out, dataset_dirs=dirs,
                              datasets=args.datasets, split=args.split, templates=args.templates,
                              data_root=args.data_root, overrides=overrides, max_samples=args.max_samples,
                              progress=not args.no_progress))
    for h in card["history"]:
        console().print(f"{h['stage']}: {h['steps']} steps, loss {h['first_loss']} -> {h['last_loss']}")
    console().print(f"model: {args.out} (rlbind-bench run --model {args.out})")
    return EXIT_OK
