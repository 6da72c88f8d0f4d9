"""The demo zoo: small encoders trained offline with the bundled trainer, shipped in the repo (zoo/demo/).

`demo/init` is a fresh random init (the start of `demo/backbone`); the others are trained from the
committed recipes in recipes/demo/ with the commands in docs/zoo.md.
"""

from __future__ import annotations

from pathlib import Path

from rlbind_bench.bundled import bundled_path
from rlbind_bench.encoders.demo import build_demo_encoder
from rlbind_bench.encoders.registry import MANIFEST, ModelEntry, load_encoder, register_model
from rlbind_bench.errors import UserError


def zoo_dir() -> Path:
    """The demo zoo's folder: $RLBIND_ZOO_DIR/demo, the checkout's zoo/demo or the wheel's copy."""
    return bundled_path("zoo") / "demo"

METHODS = {
    "fare": "FARE (unsupervised embedding invariance)",
    "tecoa": "TeCoA (adversarial CE against class texts)",
    "pmg-aft": "PMG-AFT",
    "rlbind": "RLBind stage 1 then stage 2",
    "rlbind-stage1": "RLBind stage 1 alone (the first half of demo/rlbind of the same seed)",
}
SEEDS = (0, 1, 2)
# The wheel carries the backbone and seed 0 of each method (pyproject.toml); the other seeds ship in the repository.
IN_WHEEL_SEED = 0
DEMO_ZOO = ("backbone", *(f"{m}-s{seed}" for m in METHODS for seed in SEEDS))
DESCRIPTIONS = {
    "backbone": "demo towers bound to frozen MiniLM text on the pretraining mix (digits, Fashion-MNIST, letters)",
    **{f"{m}-s{seed}": f"demo/backbone + {what}, fine-tuned on the digits, training seed {seed}"
       for m, what in METHODS.items() for seed in SEEDS},
}


def _trained(name: str):
    def build():
        folder = zoo_dir() / name
        if not (folder / MANIFEST).is_file():
            raise UserError(f"demo/{name} is not here ({folder}): the wheel carries the backbone and seed "
                            f"{IN_WHEEL_SEED} of each method, a clone of the repository every model; or train it "
                            "with scripts/train-demo-zoo.sh (docs/zoo.md)")
        encoder = load_encoder(str(folder))
        encoder.name = f"demo/{name}"
        return encoder

    return build


def _init():
    return build_demo_encoder(seed=0, name="demo/init")


register_model(ModelEntry("demo/init", "demo encoder family, random init (seed 0)", _init,
                          source="rlbind_bench/encoders/demo.py", licence="Apache-2.0 (MiniLM: Apache-2.0)"))
for _name in DEMO_ZOO:
    register_model(ModelEntry(f"demo/{_name}", DESCRIPTIONS[_name], _trained(_name), source=f"zoo/demo/{_name}",
                              licence="Apache-2.0"))

