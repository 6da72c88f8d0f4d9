"""Training objectives, one function each. Formulas and choices: docs/method.md.

Shapes: embeddings [B, D] (unnormalised unless stated), class text embeddings [C, D] (normalised),
labels [B] int64, logits [B, C].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binding_loss(emb: torch.Tensor, class_text: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor | float
                 ) -> torch.Tensor:
    """LanguageBind's binding objective (Zhu et al., ICLR 2024, eq. 1-2): symmetric InfoNCE between a modality
    tower and the frozen text tower, here with class prompts as the texts.

    L_{M->T} = CE(s * f̂ T̂ᵀ, y) over the class texts; L_{T->M}: for each class c present in the batch,
    -log Σ_{i: y_i = c} softmax_i(s * t̂_cᵀ f̂_i) (several samples may share a class text, so every one of
    them is a positive). L = (L_{M->T} + L_{T->M}) / 2.
    """
    f = F.normalize(emb, dim=-1)
    logits = scale * f @ class_text.T  # [B, C]
    m2t = F.cross_entropy(logits, labels)
    present = labels.unique()
    col = logits[:, present].T  # [K, B]: text of class k against every sample
    log_p = col.log_softmax(dim=1)
    positive = labels[None, :] == present[:, None]
    t2m = -(torch.logsumexp(log_p.masked_fill(~positive, float("-inf")), dim=1)).mean()
    return (m2t + t2m) / 2


def fare_loss(emb_adv: torch.Tensor, emb_orig_clean: torch.Tensor) -> torch.Tensor:
    """FARE (Schlarmann et al., ICML 2024; chs20/RobustVLM train/adversarial_training_clip.py):
    E_x ||φ(x_adv) - φ_org(x)||²₂ on unnormalised embeddings, summed over dimensions, mean over the batch
    (no ½). φ_org is the frozen initial encoder."""
    return (emb_adv - emb_orig_clean).pow(2).sum(dim=1).mean()


def tecoa_loss(logits_adv: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """TeCoA (Mao et al., ICLR 2023; ZSRobust4FoundationModel finetuning.py): cross-entropy of the scaled
    cosine logits against the class text embeddings, on adversarial inputs."""
    return F.cross_entropy(logits_adv, labels)


def pmg_aft_loss(logits_adv: torch.Tensor, logits_orig_adv: torch.Tensor, logits_clean: torch.Tensor,
                 labels: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """PMG-AFT (Wang et al., CVPR 2024; PMG_AFT.py lines 728-738):
    CE(adv) + alpha·KL(p_orig(x_adv) ‖ p(x_adv)) + beta·KL(p(x_clean) ‖ p(x_adv)), as the released code
    computes it: nn.KLDivLoss(reduction="sum")(log_softmax(adv), softmax(target)), here divided by the batch
    size so the weights do not depend on it (the code's alpha = beta = 1 at batch 256 is alpha = beta = 256 here; the
    recipe sets them)."""
    log_p = logits_adv.log_softmax(dim=1)
    b = logits_adv.shape[0]
    kl_orig = F.kl_div(log_p, logits_orig_adv.softmax(dim=1), reduction="sum") / b
    kl_clean = F.kl_div(log_p, logits_clean.softmax(dim=1), reduction="sum") / b
    return F.cross_entropy(logits_adv, labels) + alpha * kl_orig + beta * kl_clean


def rlbind_stage1_loss(emb_adv: torch.Tensor, emb_orig_clean: torch.Tensor) -> torch.Tensor:
    """RLBind stage 1 (arXiv 2509.14383, abstract; the Moonlight review says it adapts FARE): unsupervised
    clean-adversarial invariance of each modality tower, ||φ_m(x_adv) - φ_m,org(x)||²₂ — the FARE objective
    applied to every modality's tower, not only the image one."""
    return fare_loss(emb_adv, emb_orig_clean)


def text_anchor_loss(emb_clean: torch.Tensor, emb_adv: torch.Tensor, class_text: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """RLBind stage 2, term (a) (our choice; the paper's formula is not public): the discrepancy between the
    clean and the adversarial embedding and the frozen text anchor of the true class, as cosine distance:
    mean(1 - cos(f(x), t_y)) + mean(1 - cos(f(x_adv), t_y))."""
    anchor = class_text[labels]
    return ((1 - F.cosine_similarity(emb_clean, anchor, dim=-1)).mean()
            + (1 - F.cosine_similarity(emb_adv, anchor, dim=-1)).mean())


def contrastive_anchor_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, labels: torch.Tensor
                            ) -> torch.Tensor:
    """RLBind stage 2, contrastive text anchor (a variant of term (a), our choice): cross-entropy over the class
    texts at the model's logit scale, for the clean and the adversarial embedding: CE(s f̂(x) T̂ᵀ, y) +
    CE(s f̂(x_adv) T̂ᵀ, y). Unlike the cosine pull it also pushes away from the other classes' texts."""
    return F.cross_entropy(logits_clean, labels) + F.cross_entropy(logits_adv, labels)


def weight_distance(params: dict[str, list[torch.Tensor]], start: dict[str, list[torch.Tensor]]) -> torch.Tensor:
    """L2-SP (Li et al., ICML 2018): sum of ||θ - θ_start||²₂ over every parameter of the trained towers, where θ_start
    are the weights the stage started from (for RLBind stage 2: stage 1's result)."""
    terms = [(p - p0).pow(2).sum() for m in params for p, p0 in zip(params[m], start[m], strict=True)]
    return torch.stack(terms).sum()


def gaussian_mmd2(a: torch.Tensor, b: torch.Tensor, bandwidth: float = 0.5) -> torch.Tensor:
    """Biased estimate of the squared MMD with k(u, v) = exp(-||u - v||² / (2 sigma²)) (Gretton et al., 2012)."""
    def k(u, v):
        return torch.exp(-torch.cdist(u, v).pow(2) / (2 * bandwidth ** 2))

    return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()


def class_alignment_loss(embs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], bandwidth: float = 0.5,
                         mmd_weight: float = 1.0, mean_weight: float = 1.0) -> torch.Tensor:
    """RLBind stage 2, term (b) (our choice): class-wise distributional alignment across modalities. For each
    pair of modalities and each class present in both: Gaussian-kernel MMD² between the class-conditional
    normalised embeddings, plus the squared distance of the class means; averaged over (pair, class)."""
    names = sorted(embs)
    terms = []
    normed = {m: F.normalize(embs[m], dim=-1) for m in names}
    for i, ma in enumerate(names):
        for mb in names[i + 1:]:
            shared = set(labels[ma].tolist()) & set(labels[mb].tolist())
            for c in sorted(shared):
                a = normed[ma][labels[ma] == c]
                b = normed[mb][labels[mb] == c]
                term = mean_weight * (a.mean(0) - b.mean(0)).pow(2).sum()
                if mmd_weight:
                    term = term + mmd_weight * gaussian_mmd2(a, b, bandwidth)
                terms.append(term)
    if not terms:
        first = next(iter(embs.values()))
        return first.sum() * 0.0
    return torch.stack(terms).mean()
