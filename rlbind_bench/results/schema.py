"""Parquet schemas of the result tables.

Policy: bump SCHEMA_VERSION on any change a reader must know about, and on any change of what `config_hash`
covers (a baseline's hashes would no longer match a new run's, so `check` must say "rerun the baseline"
instead of reporting a regression or silently matching nothing). Files of older versions stay readable:
`results.store.read_table` upgrades them (UPGRADES below) and `check` refuses them as baselines.

History: 1, the first schema. 2, typed threat specs (the hashed threat settings changed), the attack kind as
columns (`attack`, `adversarial`), the model by its weights' content in config_hash (not its path), and the
summary's `balanced_accuracy`. 3, the embedding-space threats' columns (cosine kept, target, true rank; the
summary's mean cosine, fractions above COSINE_THRESHOLDS and targeted success rate; each targeted row's
success flag and, for targets from another modality's dataset, the target sample); and (transfer/dB block) the transfer threat's `source_model` (samples and
summary) and the per-sample amplitude budget `eps_input` (samples), for the dB threats whose eps is not in
input units.
"""

from __future__ import annotations

import math

import pyarrow as pa

SCHEMA_VERSION = "3"
METADATA_KEY = b"rlbind_bench.schema_version"

# --- embedding-space threats (schema 3): threats/embedding.py, threats/crossmodal.py ---------------------------
# The summary reports the fraction of samples whose attacked embedding keeps at least each of these cosines.
COSINE_THRESHOLDS = (0.9, 0.7, 0.5)


def cosine_fraction_column(threshold: float) -> str:
    """frac_cosine_ge_0_90 for 0.9: a column name without a dot (itertuples and SQL keep it)."""
    return "frac_cosine_ge_" + f"{threshold:.2f}".replace(".", "_")


EMBEDDING_SAMPLE_FIELDS = [
    ("embedding_cosine", pa.float64()),  # cos(f(x_final), f(x)) of the raw embeddings (NaN: not measured)
    ("target", pa.int64()),  # the class a targeted attack aimed at (-1: untargeted)
    ("true_rank", pa.int64()),  # 1 + the classes scored above the label at the final input (-1: not measured)
    # A targeted attack's success at the final input (False where untargeted): target text, the nearest class
    # text is the target; target modality:M, the nearest target-set embedding is of the target class.
    ("target_hit", pa.bool_()),
    ("target_sample", pa.string()),  # modality targets: the target dataset's sample id aimed at ("" otherwise)
]
EMBEDDING_SUMMARY_FIELDS = [
    ("mean_cosine", pa.float64()),  # mean embedding_cosine over valid rows (NaN: not measured)
    *((cosine_fraction_column(t), pa.float64()) for t in COSINE_THRESHOLDS),  # fraction with cosine >= t
    ("target_success", pa.float64()),  # fraction of valid targeted rows with target_hit
]
EMBEDDING_SUMMARY_DEFAULTS = {name: math.nan for name, _ in EMBEDDING_SUMMARY_FIELDS}
# --- end of the embedding-space threats' block ------------------------------------------------------------------

SAMPLE_FIELDS = [
    ("run_id", pa.string()),
    ("model", pa.string()),
    ("modality", pa.string()),
    ("dataset", pa.string()),
    ("sample_id", pa.string()),
    ("label", pa.int64()),
    ("threat", pa.string()),
    ("attack", pa.string()),  # the attack kind (attacks/*.yaml `attack:`): clean, pgd, autoattack, corruptions
    ("adversarial", pa.bool_()),  # an input-gradient attack (Attack.adversarial): sanity checks apply
    ("norm", pa.string()),  # "Linf", "L2" or "" (clean, corruptions)
    ("eps", pa.float64()),  # NaN where the threat has no eps
    ("severity", pa.int64()),  # 0 where the threat has no severity
    ("config_hash", pa.string()),
    ("clean_pred", pa.int64()),
    ("pred", pa.int64()),
    ("correct", pa.bool_()),
    ("seed", pa.int64()),
    ("attacked", pa.bool_()),  # False: skipped because already misclassified clean
    ("broken_by", pa.string()),  # first sub-attack that flipped the prediction ("" if none)
    ("perturbation_norm", pa.float64()),  # ||x_adv - x|| in the threat's norm (NaN: none)
    ("margin", pa.float64()),  # logit[label] - max other logit at the final input
    ("valid", pa.bool_()),  # False when the model produced NaN/Inf on this sample
    *EMBEDDING_SAMPLE_FIELDS,
    # --- schema 3, transfer/dB block (issue #17 items 4-5) ---
    ("source_model", pa.string()),  # the model a transfer threat crafted on (Attack.source_model); "" otherwise
    # The sample's budget in input-space units, in the cell's norm: the cell's eps, except for the dB threats
    # (eps in dB of the clip's peak), whose per-clip budget is 10^(eps/20) * max|x|; NaN where no eps.
    ("eps_input", pa.float64()),
    # --- end transfer/dB block ---
]
SAMPLE_SCHEMA = pa.schema(SAMPLE_FIELDS, metadata={METADATA_KEY: SCHEMA_VERSION.encode()})
SAMPLE_COLUMNS = [name for name, _ in SAMPLE_FIELDS]

SUMMARY_FIELDS = [
    ("model", pa.string()),
    ("modality", pa.string()),
    ("dataset", pa.string()),
    ("threat", pa.string()),
    ("attack", pa.string()),
    ("adversarial", pa.bool_()),
    ("norm", pa.string()),
    ("eps", pa.float64()),
    ("severity", pa.int64()),
    ("config_hash", pa.string()),
    ("n", pa.int64()),
    ("n_correct", pa.int64()),
    ("accuracy", pa.float64()),  # fraction in [0, 1]
    ("balanced_accuracy", pa.float64()),  # mean per-class recall over the classes present
    ("ci_low", pa.float64()),  # 95% Wilson interval
    ("ci_high", pa.float64()),
    ("n_invalid", pa.int64()),
    ("n_skipped", pa.int64()),  # unreadable files
    ("checks_failed", pa.string()),  # comma-separated names of failed sanity checks ("" if none)
    *EMBEDDING_SUMMARY_FIELDS,
    # --- schema 3, transfer/dB block ---
    ("source_model", pa.string()),  # transfer threats: the source model ("" otherwise)
    # --- end transfer/dB block ---
]
SUMMARY_SCHEMA = pa.schema(SUMMARY_FIELDS, metadata={METADATA_KEY: SCHEMA_VERSION.encode()})
SUMMARY_COLUMNS = [name for name, _ in SUMMARY_FIELDS]


def _upgrade_from_1(frame):
    """Schema 1 had no attack-kind columns, and three kinds: clean (the threat named clean), corruptions (the
    only cells with a severity) and adversarial attacks (the only cells with a norm). Which adversarial attack
    (pgd or autoattack) a schema-1 row ran is not in the rows: its `attack` is "" (run.json has it)."""
    frame = frame.copy()
    if "accuracy" in frame.columns:  # a summary table: per-class recall is not in it (rerun to get it)
        frame["balanced_accuracy"] = math.nan
    frame["adversarial"] = frame["norm"].fillna("") != ""
    frame["attack"] = ["clean" if t == "clean" else "corruptions" if s > 0 else ""
                       for t, s in zip(frame["threat"], frame["severity"], strict=True)]
    return frame


def _add_embedding_threat_columns(frame):
    """Schema 2 had no embedding-space threats: their columns are "not measured" (NaN, -1) in every row."""
    frame = frame.copy()
    if "accuracy" in frame.columns:  # a summary table
        for name, value in EMBEDDING_SUMMARY_DEFAULTS.items():
            frame[name] = value
    else:
        frame["embedding_cosine"] = math.nan
        frame["target"] = -1
        frame["true_rank"] = -1
        frame["target_hit"] = False
        frame["target_sample"] = ""
    return frame


# --- schema 3, transfer/dB block: the part of the 2 -> 3 upgrade for source_model and eps_input ---
def _upgrade_2_transfer_db(frame):
    """Schema 2 had no transfer threat (source_model "") and only eps in input units: a sample's budget was its
    cell's eps (NaN for clean and corruptions)."""
    frame = frame.copy()
    frame["source_model"] = ""
    if "sample_id" in frame.columns:  # a samples table
        frame["eps_input"] = frame["eps"].astype(float)
    return frame
# --- end transfer/dB block ---



def _upgrade_from_2(frame):
    """2 -> 3: each block of columns added in schema 3 fills its own."""
    return _upgrade_2_transfer_db(_add_embedding_threat_columns(frame))


# version read -> function bringing a frame of that version to the next one
UPGRADES = {"1": ("2", _upgrade_from_1), "2": ("3", _upgrade_from_2)}
