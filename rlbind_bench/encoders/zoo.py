"""The demo zoo: small encoders trained offline with the bundled trainer, shipped in the repo (zoo/demo/).

`demo/init` is a fresh random init (the start of `demo/backbone`); the others are trained from the
committed recipes in recipes/demo/ with the commands in docs/zoo.md.
"""

from __future__ import annotations

from rlbind_bench.encoders.demo import build_demo_encoder
from rlbind_bench.encoders.registry import MANIFEST, ModelEntry, load_encoder, register_model
from rlbind_bench.errors import UserError
from rlbind_bench.paths import project_path

ZOO_DIR = project_path("zoo", cwd=False) / "demo"  # $RLBIND_PROJECT_DIR's or the checkout's
DEMO_ZOO = ("backbone", "fare", "tecoa", "pmg-aft", "rlbind")
DESCRIPTIONS = {
    "backbone": "demo towers bound to frozen MiniLM text (clean binding)",
    "fare": "demo/backbone + FARE (unsupervised embedding invariance)",
    "tecoa": "demo/backbone + TeCoA (adversarial CE against class texts)",
    "pmg-aft": "demo/backbone + PMG-AFT",
    "rlbind": "demo/backbone + RLBind stage 1 then stage 2",
}


def _trained(name: str):
    def build():
        folder = ZOO_DIR / name
        if not (folder / MANIFEST).is_file():
            raise UserError(f"demo/{name} is not in this checkout ({folder}); train it with the command in "
                            "docs/zoo.md")
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

