"""The timed pieces the attack benchmarks share (attack_throughput.py on CPU, device_bench.py on a GPU): the bound,
the project's PGD, torchattacks' PGD and AutoAttack through the project and through pyautoattack, each on a list of
(x, y, ids) batches already on the model's device. Accuracies are fractions of the samples in the batches."""

from __future__ import annotations

import time

import torch

Batch = tuple[torch.Tensor, torch.Tensor, list[str]]


def sync(device: torch.device | str | None = None) -> None:
    if torch.device(device or "cpu").type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeat: int = 1, device: torch.device | str | None = None):
    """(best seconds of `repeat` calls, the last call's result); GPU work is waited for inside the timing."""
    best, out = float("inf"), None
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def make_batches(x: torch.Tensor, y: torch.Tensor, ids: list[str], batch_size: int) -> list[Batch]:
    return [(x[i:i + batch_size], y[i:i + batch_size], ids[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def n_samples(batches: list[Batch]) -> int:
    return sum(len(b[0]) for b in batches)


def bound(clf, batches: list[Batch], steps: int) -> None:
    """steps x one forward+backward (w.r.t. the input) per batch: the work PGD-k cannot do with less."""
    for x, y, _ in batches:
        for _ in range(steps):
            xg = x.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(clf(xg), y, reduction="sum")
            torch.autograd.grad(loss, xg)


def pgd_attack(eps: float, steps: int, alpha: float, norm: str = "Linf"):
    """(the project's PGD, its first cell) as the runner builds them."""
    from rlbind_bench.threats.pgd import PGD
    from rlbind_bench.threats.spec import PGDSpec

    spec = PGDSpec(name="linf-pgd", attack="pgd", norm=norm, eps=(eps,), steps=steps, step_size=alpha)
    attack = PGD(spec)
    return attack, attack.cells("image")[0]


def _context(clf, x, ids, num_classes: int, device, modality: str = "image"):
    from rlbind_bench.threats.base import AttackContext

    with torch.no_grad():
        logits = clf(x).float()
    return AttackContext(modality, 0, ids, logits, 0.0, 1.0, num_classes, torch.device(device))


def project_pgd(clf, batches: list[Batch], eps: float, steps: int, alpha: float, num_classes: int,
                device="cpu") -> float:
    """Robust accuracy under the project's PGD, through the Attack interface the runner uses."""
    attack, cell = pgd_attack(eps, steps, alpha)
    correct = 0
    for x, y, ids in batches:
        res = attack.run(clf, x, y, cell, _context(clf, x, ids, num_classes, device))
        correct += int((res.pred == y.cpu()).sum())
    return correct / n_samples(batches)


def torchattacks_pgd(clf, batches: list[Batch], eps: float, steps: int, alpha: float) -> float:
    """Robust accuracy under torchattacks' PGD in a plain loop, as a user would run it."""
    import torchattacks

    ta = torchattacks.PGD(clf, eps=eps, alpha=alpha, steps=steps, random_start=True)
    correct = 0
    for x, y, _ in batches:
        adv = ta(x, y)
        with torch.no_grad():
            correct += int((clf(adv).argmax(1) == y).sum())
    return correct / n_samples(batches)


def project_autoattack(clf, batches: list[Batch], eps: float, num_classes: int, device="cpu") -> float:
    """Robust accuracy under AutoAttack standard (L-inf) through the project's threat."""
    from rlbind_bench.threats.autoattack import AutoAttackThreat
    from rlbind_bench.threats.spec import AutoAttackSpec

    aa = AutoAttackThreat(AutoAttackSpec(name="aa", attack="autoattack", norm="Linf", eps=(eps,),
                                         version="standard", seed=0))
    cell = aa.cells("image")[0]
    correct = 0
    for x, y, ids in batches:
        res = aa.run(clf, x, y, cell, _context(clf, x, ids, num_classes, device))
        correct += int((res.pred == y.cpu()).sum())
    return correct / n_samples(batches)


def reference_autoattack(clf, batches: list[Batch], eps: float, num_classes: int, device="cpu") -> float:
    """Robust accuracy under pyautoattack's AutoAttack standard, called as a user would (inputs already in
    [0, 1]); the only edit is the target count, which must be below the number of classes (AutoAttack issue 110)."""
    import pyautoattack

    correct = 0
    for x, y, _ in batches:
        ref = pyautoattack.AutoAttack(clf, norm="Linf", eps=eps, version="standard", seed=0, device=str(device))
        ref.apgd_targeted.n_target_classes = ref.fab.n_target_classes = min(9, num_classes - 1)
        _, y_adv = ref.run_standard_evaluation(x, y, batch_size=len(x))
        correct += int((y_adv.to(y.device) == y).sum())
    return correct / n_samples(batches)


def tiled(base: torch.Tensor, n: int) -> torch.Tensor:
    """n samples from the real inputs `base`, tiled and shifted by a pixel per copy so no two are identical."""
    reps = (n + len(base) - 1) // len(base)
    return torch.cat([torch.roll(base, shifts=i, dims=-1) for i in range(reps)])[:n]
