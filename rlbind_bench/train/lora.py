"""`trainable: lora`: peft LoRA adapters on the modality towers, merged into plain weights whenever saved.

Saved models (intermediate checkpoints and the final folder) hold W + (alpha/r)·B·A in the base layers'
own names, so a LoRA-trained folder has exactly the format of a `trainable: tower` one and loads with
`rlbind-bench run --model DIR`. Merging for an intermediate checkpoint binds a new merged tensor to each
base layer for the time of the save and never writes into the frozen base weights: adding and subtracting
the delta again would round, and a resumed run would no longer continue bitwise from the same state. The
adapter matrices are checkpointed on their own (`lora.safetensors`) for the same reason: they cannot be
recovered from the merged weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.loading import load_state_dict
from rlbind_bench.errors import ConfigError
from rlbind_bench.seeding import derived_seed
from rlbind_bench.train.recipes import LoraSettings

ADAPTER = "rlbind"  # not peft's "default": never collides with adapters a checkpoint's own config adds
ADAPTER_FILE = "lora.safetensors"


def _matches(name: str, targets: Sequence[str]) -> bool:
    # peft's rule for a list of target_modules: the full name, or its last dotted parts.
    return any(name == t or name.endswith("." + t) for t in targets)


def is_adapter_param(name: str) -> bool:
    return f".{ADAPTER}." in name


def attach(encoder: BoundEncoder, modalities: Sequence[str], settings: LoraSettings,
           seed: int) -> tuple[dict[str, nn.Parameter], dict[str, list[str]]]:
    """Add LoRA layers to the towers of `modalities`; return the adapter parameters by their name in the
    encoder, and the adapted modules per modality (names inside `encoder.tower(m)`)."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    # Injected at the encoder's root with full names: `tower(m)` may be a temporary container (LanguageBind's
    # ModuleDict), and an adapter swapped into a temporary parent would never run.
    full_names = {id(module): name for name, module in encoder.named_modules()}
    adapted: dict[str, list[str]] = {}
    for m in modalities:
        tower = encoder.tower(m)
        if any(isinstance(module, LoraLayer) for module in tower.modules()):
            raise ConfigError(f"the {m} tower already has LoRA layers (a LanguageBind config with lora_r > 0); "
                              "train it with trainable: tower")
        wanted = tuple(settings.target_modules) or encoder.lora_targets(m)
        inside = [name for name, _ in tower.named_modules() if name and _matches(name, wanted)]
        if not inside:
            raise ConfigError(f"lora.target_modules {list(wanted)} match no module of the {m} tower")
        modules = dict(tower.named_modules())
        config = LoraConfig(r=int(settings.r), lora_alpha=float(settings.alpha), lora_dropout=float(settings.dropout),
                            target_modules=[full_names[id(modules[name])] for name in inside], bias="none")
        # Seeded per modality: the adapters' init (lora_A) must not depend on the global RNG or on which other
        # modalities are trained, or two runs of one recipe would differ from step 0.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(seed, "lora", m))
            try:
                inject_adapter_in_model(config, encoder, adapter_name=ADAPTER)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"lora on the {m} tower: {exc}") from exc
        encoder.__dict__.pop("peft_config", None)  # peft's bookkeeping; nothing here reads it
        adapted[m] = inside
    params = {name: p for name, p in encoder.named_parameters() if is_adapter_param(name)}
    for p in params.values():
        p.requires_grad_(True)
    return params, adapted


def _adapted_layers(root: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return [(parent, name, child) for parent in root.modules() for name, child in parent.named_children()
            if isinstance(child, LoraLayer) and ADAPTER in child.lora_A]


def _merged_weight(layer) -> nn.Parameter:
    base = layer.get_base_layer()
    with torch.no_grad():
        merged = base.weight + layer.get_delta_weight(ADAPTER).to(base.weight.dtype)
    return nn.Parameter(merged, requires_grad=False)


# The base layer object itself goes back in place of its LoRA wrapper, with the merged weight bound to it,
# rather than a copy: a layer can have a second parent outside the encoder's module tree (LanguageBind's
# `visual_projection` in the HF model that `save` writes is also `encoder.projection[m]`), and only the base
# object is shared by both.
@contextmanager
def merged(root: nn.Module) -> Iterator[None]:
    """Within the block, every adapted layer is its plain base layer holding base + delta (no-op without LoRA);
    afterwards the adapters and the very same base weight tensors are back."""
    layers = _adapted_layers(root)
    originals = []
    for parent, name, layer in layers:
        base = layer.get_base_layer()
        originals.append(base.weight)
        merged_weight = _merged_weight(layer)
        base.weight = merged_weight
        setattr(parent, name, base)
    try:
        yield
    finally:
        for (parent, name, layer), weight in zip(layers, originals, strict=True):
            layer.get_base_layer().weight = weight
            setattr(parent, name, layer)


def merge_and_unload(root: nn.Module) -> None:
    """Replace every adapted layer by its base layer holding the merged weight, for good (the values `merged`
    saves)."""
    for parent, name, layer in _adapted_layers(root):
        base = layer.get_base_layer()
        base.weight = _merged_weight(layer)
        setattr(parent, name, base)


def base_digest(encoder: BoundEncoder, modalities: Sequence[str]) -> str:
    """sha256 of the frozen weights of the adapted towers (temperature aside): a resume must start from the
    same base."""
    h = hashlib.sha256()
    for m in modalities:
        tower = encoder.tower(m)
        # A tower's own temperature (demo towers hold it) learned alongside the adapters is not base; a frozen
        # one is, as before `learn_temperature` existed.
        learned = {n for n, p in tower.named_parameters() if p is encoder.temperature(m) and p.requires_grad}
        for name, t in sorted(tower.state_dict().items()):
            if is_adapter_param(name) or name in learned:
                continue
            t = t.detach().to("cpu").contiguous()
            h.update(f"{m}|{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_adapters(params: dict[str, nn.Parameter], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({n: p.detach().to("cpu").contiguous() for n, p in params.items()}, str(path))


def load_adapters(params: dict[str, nn.Parameter], path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path.parent} has no {path.name}: it was not written by a trainable: lora run "
                          "(train into another --out)")
    state = load_state_dict(path)
    if set(state) != set(params) or any(state[n].shape != p.shape for n, p in params.items()):
        raise ConfigError(f"{path}: the adapters do not match this recipe's LoRA settings (r, target_modules); "
                          "train into another --out")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state[n])
