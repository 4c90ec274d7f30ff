# Copyright 2026 The fedjax_m3t Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The typed configuration of experiments/train.py, filled from flags and --config.

A run is one frozen `TrainConfig` of six groups: `data`, `model`, `algorithm`,
`run`, `output` and `privacy`. Every field is also a plain absl flag of the same name
(`--rounds`, `--width`, ...: the names are unique across groups), defined by
`define_flags` from the field's type, default and help. `from_flags` takes each
field from the first of:

  1. its flag, when given on the command line (`--width=64`);
  2. an override of the config file (`--config.model.width=64`);
  3. the config file: `--config=experiments/configs/tiny.py` (its `get_config()`
     returns a ConfigDict with the same groups; fields it lacks keep their
     defaults), or `--preset=tiny`, which names experiments/configs/tiny.py;
  4. the field's default (experiments/configs/default.py is exactly these).

Setting one field both as a flag and as a --config override, or giving both
--preset and --config, is an error. Values are checked when a config is built
(`SettingsError`, naming the flag); checks that need the data are in train_lib.

>>> config = TrainConfig().override(rounds=3, frozen=['encoders/**'])
>>> config.run.rounds, config.algorithm.frozen
(3, ('encoders/**',))
"""

import dataclasses
import importlib
import json
import math
import os
import pkgutil
import re
import sys
import types
import typing
from collections.abc import Sequence

from absl import flags
from ml_collections import config_dict, config_flags

from experiments import configs as configs_package
from fedjax_m3t.algorithms import registry
from fedjax_m3t.attacks import plan as attack_plan
from fedjax_m3t.data import text as text_lib
from fedjax_m3t.datasets import multilevel

# Datasets read from downloaded files through a TFDS builder (--data_dir, --manual_dir):
# name -> its folder in fedjax_m3t.datasets, whose builder has federation_from_builder.
BUILDER_DATASETS = {
    "assistments2009": "assistments2009",
    "ednet_kt1": "ednet_kt1",
    "asap_aes": "asap_aes",
    "oulad": "oulad",
    "scienceqa": "scienceqa",
}
DATASETS = ("synthetic", "csv") + tuple(BUILDER_DATASETS) + multilevel.DATASETS
MODELS = ("m3t", "linear")
# The config files of experiments/configs/, by name: the choices of --preset.
PRESETS = tuple(m.name for m in pkgutil.iter_modules(configs_package.__path__))
DEFAULT_CONFIG_FILE = os.path.join(os.path.dirname(configs_package.__file__), "default.py")

# Fields that may change between a run and its resumption: the others make up the
# fingerprint saved with each checkpoint.
RESUMABLE = (
    "baselines",
    "group_by",
    "rounds",
    "workdir",
    "checkpoint_every",
    "eval_every",
    "tensorboard",
    "num_devices",
    "chunk_size",
    "resume",
)

# The range of every numeric field (= flag), in interval notation: '[1, inf)' is >= 1,
# '(0, 1)' is strictly between 0 and 1. Checked when a config is built, before any
# data is loaded (NaN is in no range; a new numeric field needs an entry here).
RANGES = {
    "num_clients": "[1, inf)",
    "mean_examples": "[1, inf)",
    "quantity_skew": "[0, inf)",
    "label_skew_alpha": "(0, inf)",
    "modality_missing_prob": "[0, 1]",
    "task_missing_prob": "[0, 1]",
    "test_fraction": "(0, 1)",  # 0 leaves nothing to report; 1 nothing to train on.
    "dirichlet_alpha": "(0, inf)",
    "text_length": "[0, inf)",
    "width": "[1, inf)",
    "depth": "[1, inf)",
    "num_heads": "[1, inf)",
    "lora_rank": "[0, inf)",
    "num_prompts": "[0, inf)",
    "text_lora_rank": "[0, inf)",
    "client_lr": "(0, inf)",
    "server_lr": "(0, inf)",
    "server_momentum": "[0, 1)",
    "prox_mu": "[0, inf)",
    "local_steps": "[1, inf)",
    "batch_size": "[0, inf)",
    "rounds": "[1, inf)",  # 0 trains nothing: the report would be of the initial model.
    "cohort_size": "[0, inf)",
    "chunk_size": "[0, inf)",
    "num_devices": "[0, inf)",
    "seed": "[0, 4294967295]",
    "checkpoint_every": "[0, inf)",
    "eval_every": "[0, inf)",
    "max_classes": "[2, inf)",
    "guard_max_norm_ratio": "(0, inf)",  # None (the default): no norm rule.
    "cloud_every": "[0, inf)",
    "qffl_q": "[0, inf)",
    "afl_lr": "(0, inf)",
    "edge_every": "[0, inf)",
    "secagg_degree": "[2, inf)",
    "secagg_dropout": "[0, 1]",
    "secagg_threshold": "(0, 1)",
    "secagg_bits": "[0, 32]",
    "secagg_precision": "[0, 30]",
    "secagg_clip": "(0, inf)",
    "secagg_weight_bound": "[1, inf)",
    "dp_sgd_clip": "[0, inf)",
    "dp_sgd_noise_multiplier": "[0, inf)",
    "local_dp_clip": "[0, inf)",
    "local_dp_noise_multiplier": "[0, inf)",
    "fine_tune_steps": "[0, inf)",
    "fedrep_head_steps": "[-1, inf)",  # -1: half of local_steps.
    "ditto_lambda": "[0, inf)",
    "ditto_steps": "[0, inf)",
    "attack_fraction": "[0, 1]",
    "dp_clip": "[0, inf)",
    "dp_noise_multiplier": "[0, inf)",
    "dp_adaptive_quantile": "[0, 1)",
    "dp_adaptive_lr": "[0, inf)",
    "dp_delta": "(0, 1)",
    "target_epsilon": "[0, inf)",
    "tap_margin": "[0, inf)",
    "tap_small_margin": "[0, inf)",
    "tap_distill_weight": "[0, inf)",
    "tap_distill_boost": "[0, inf)",
    "tap_temperature": "(0, inf)",
}


# The defaults of --dataset=csv, for the fields the command line and the config file
# leave at their generic default: a smaller model, a smaller client learning rate and
# more rounds, so that a small school table does not end below the mean predictor
# (chosen by `python -m experiments.csv_defaults`; README "Data" gives the numbers).
CSV_DEFAULTS = {
    "width": 16,
    "depth": 1,
    "num_heads": 2,
    "client_lr": 1e-3,
    "rounds": 100,
}


def with_csv_defaults(values: dict, given: set[str]) -> dict:
    """`values` ({field: value}) with CSV_DEFAULTS where --dataset=csv leaves a field unset.

    A field keeps its value when it was `given` (command line, --config override) or
    differs from the generic default (a config file set it); targets stay standardised
    (--standardize_targets, already the default).
    """
    if values.get("dataset") != "csv":
        return values
    generic = TrainConfig().flat()
    out = dict(values)
    for name, value in CSV_DEFAULTS.items():
        if name not in given and out.get(name, generic[name]) == generic[name]:
            out[name] = value
    return out


class SettingsError(ValueError):
    """Settings that cannot work together; the message says what to change."""


def _field(default, help_text: str, choices: Sequence[str] | None = None):
    """A config field with the help (and the choices) of its flag."""
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


def _positive(group, *names: str) -> None:
    for name in names:
        value = getattr(group, name)
        if value is None or value < 1:
            raise SettingsError(f"--{name} must be >= 1, got {value}.")


class _Group:
    """Checks shared by the groups: field types, choices and ranges."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _coerce(field, getattr(self, field.name)))
            choices = field.metadata["choices"]
            value = getattr(self, field.name)
            if choices is not None and value not in choices:
                raise SettingsError(f"--{field.name}={value} is unknown; choose from {choices}.")
            if field.name in RANGES and value is not None:
                check_range(field.name, value, RANGES[field.name])


def check_range(name: str, value: float, interval: str) -> None:
    """Raises SettingsError unless `value` lies in `interval` ('[0, 1)', '(0, inf)', ...).

    >>> check_range('client_lr', 0.1, '(0, inf)')
    >>> check_range('client_lr', -0.1, '(0, inf)')
    Traceback (most recent call last):
    ...
    experiments.config.SettingsError: --client_lr must be > 0, got -0.1.
    """
    low_text, high_text = (part.strip() for part in interval[1:-1].split(","))
    low, high = float(low_text), float(high_text)
    low_ok = value >= low if interval[0] == "[" else value > low
    high_ok = value <= high if interval[-1] == "]" else value < high
    if low_ok and high_ok and math.isfinite(value):
        return
    if math.isinf(high):
        rule = (">= " if interval[0] == "[" else "> ") + low_text
    else:
        rule = f"in {interval}"
    raise SettingsError(f"--{name} must be {rule}, got {value}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(_Group):
    """The federation: the synthetic one, a table, or downloaded datasets."""

    dataset: str = _field(
        "synthetic",
        f"One of {', '.join(DATASETS)}. The embedded synthetic federation, your own "
        "table (csv; unset model and schedule flags then take config.CSV_DEFAULTS), a "
        "downloaded dataset (with --data_dir; several joined by '+' make "
        "multi-modal institutions, e.g. assistments2009+asap_aes), or a multilevel school "
        "table (needs pip install -e '.[real]').",
    )
    num_clients: int = _field(16, "Synthetic: number of institutions.")
    mean_examples: int = _field(256, "Synthetic: mean examples per institution.")
    quantity_skew: float = _field(0.5, "Synthetic: lognormal sigma of institution sizes.")
    label_skew_alpha: float | None = _field(None, "Synthetic: Dirichlet alpha of outcome shares.")
    modality_missing_prob: float = _field(0.25, "Synthetic: P(institution lacks a modality).")
    task_missing_prob: float = _field(0.2, "Synthetic: P(institution lacks a task).")
    modalities: tuple[str, ...] = _field(
        (), "Use only these modalities (e.g. 'interaction'). Empty: all."
    )
    # Real data: the multilevel school tables (pip install -e ".[real]") or your own table.
    test_fraction: float = _field(0.25, "Real data: share of each school's rows held out.")
    standardize_targets: bool = _field(
        True, "Real data: standardise regression labels (train statistics)."
    )
    csv_path: str | None = _field(
        None, "--dataset=csv: a CSV or Parquet file, one row per student."
    )
    client_column: str | None = _field(
        None, "--dataset=csv: the column naming each student's school."
    )
    group_column: str | None = _field(None, "--dataset=csv: an optional level above the school.")
    feature_columns: tuple[str, ...] = _field(
        (), "--dataset=csv: feature columns (text ones one-hot)."
    )
    target_columns: tuple[str, ...] = _field(
        (), "--dataset=csv: targets as column:regression or column:classification."
    )
    student_column: str | None = _field(
        None,
        "--dataset=csv: optional student id of longitudinal records (with --time_column): each "
        "row also gets the student's earlier records at its school as an interaction sequence.",
    )
    time_column: str | None = _field(
        None,
        "--dataset=csv: optional time of each record (with --student_column); numbers sort "
        "numerically, text sorts as text.",
    )
    data_dir: str | None = _field(
        None, "Downloaded datasets: TFDS data_dir (built there on first use)."
    )
    partition: str = _field(
        "natural",
        "Downloaded datasets: clients are the dataset's institutions (natural), or "
        "--num_clients clients with Dirichlet(--dirichlet_alpha) label skew.",
        choices=("natural", "dirichlet"),
    )
    dirichlet_alpha: float | None = _field(None, "Dirichlet concentration (unset: IID).")
    manual_dir: str | None = _field(
        None,
        "Downloaded datasets: folder holding the downloaded files (default "
        "<data_dir>/downloads/manual; README 'Data' lists each dataset's files).",
    )
    institution: str | None = _field(
        None,
        "Downloaded datasets with a choice of institution field (oulad: region; scienceqa: "
        "subject, grade). Unset: the dataset's natural one.",
    )
    dataset_options: tuple[str, ...] = _field(
        (),
        "Downloaded datasets: their own loader options as key=value (e.g. oulad: weeks=8 for "
        "an early-warning cut; ednet_kt1: max_users=10000; scienceqa: include_lecture=True).",
    )
    strict: bool = _field(
        False, "Downloaded datasets: stop at the first malformed row instead of skipping it."
    )
    text_encoding: str = _field(
        "auto",
        "Text datasets: minilm (frozen MiniLM sentence embeddings, cached in "
        "<data_dir>/text_cache), hash (word hashing, no dependency), wordpiece (MiniLM's "
        "tokenizer, for --text_encoder=minilm); auto: minilm if installed, else hash.",
        choices=("auto", *text_lib.ENCODINGS),
    )
    text_length: int = _field(0, "Text datasets: tokens per text (0: the dataset's own).")
    csv_encoding: str = _field(
        "utf-8", "--dataset=csv: the file's text encoding (e.g. latin-1, cp1252, utf-16)."
    )
    column_kinds: tuple[str, ...] = _field(
        (),
        "--dataset=csv: feature kinds as column:numeric or column:categorical; undeclared "
        "columns are numeric when every cell is a number, categorical when most are text, "
        "and an error naming the cells when nearly all are numbers.",
    )
    max_classes: int = _field(
        50, "--dataset=csv: the most classes a classification target may have."
    )
    csv_sep: str = _field(
        ",", "--dataset=csv: the column separator (e.g. ';' or a tab, written '\\t')."
    )

    def __post_init__(self):
        super().__post_init__()
        names = self.dataset.split("+")
        unknown = [n for n in names if n not in DATASETS]
        if unknown:
            raise SettingsError(
                f"--dataset={self.dataset}: {unknown} unknown; choose from {DATASETS} "
                "(several downloaded datasets joined by '+' make multi-modal institutions)."
            )
        not_files = [n for n in names if n not in BUILDER_DATASETS]
        if len(names) > 1 and not_files:
            raise SettingsError(
                f"--dataset={self.dataset}: only downloaded datasets "
                f"{tuple(BUILDER_DATASETS)} can be combined with '+', not {not_files}."
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(_Group):
    """The model: M3T's size and adapters, or a linear model."""

    model: str = _field("m3t", "The M3T model, or a linear model.", choices=MODELS)
    width: int = _field(32, "Token width of encoders and backbone.")
    depth: int = _field(2, "Transformer layers in the backbone.")
    num_heads: int = _field(4, "Attention heads.")
    lora_rank: int = _field(4, "LoRA rank on the backbone's attention (0: no LoRA).")
    num_prompts: int = _field(0, "Learned prompt tokens (adapters/prompts).")
    text_encoder: str = _field(
        "learned",
        "learned: a table over the text ids (or a projection of cached embeddings); minilm: the "
        "pretrained all-MiniLM-L6-v2, frozen, with LoRA (needs --text_encoding=wordpiece).",
        choices=("learned", "minilm"),
    )
    text_lora_rank: int = _field(4, "--text_encoder=minilm: LoRA rank (0: none).")

    def __post_init__(self):
        super().__post_init__()
        if self.model != "m3t":
            return  # The linear model has no size.
        _positive(self, "width", "depth", "num_heads")
        if self.width % self.num_heads:
            raise SettingsError(
                f"--width={self.width} must be divisible by --num_heads={self.num_heads}."
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlgorithmConfig(_Group):
    """The federated algorithm, its optimizers and which modules it trains."""

    algorithm: str = _field("fedavg", "Federated algorithm.", choices=registry.ALGORITHMS)
    client_optimizer: str = _field("adam", "Local optimizer.", choices=registry.CLIENT_OPTIMIZERS)
    client_lr: float = _field(3e-3, "Local learning rate.")
    server_lr: float = _field(1.0, "Server learning rate.")
    server_momentum: float = _field(0.9, "fedavgm momentum.")
    prox_mu: float = _field(0.01, "fedprox proximal weight.")
    local_steps: int = _field(5, "Local optimizer steps per round.")
    batch_size: int = _field(32, "Local batch size (0: each client's whole data).")
    federated: tuple[str, ...] = _field(
        (), "Module patterns trained and averaged (default: all else)."
    )
    local: tuple[str, ...] = _field((), "Module patterns trained but kept on each client.")
    frozen: tuple[str, ...] = _field((), "Module patterns neither trained nor sent.")
    aggregator: str = _field(
        "mean",
        f"Aggregation rule: one of {', '.join(registry.AGGREGATORS)}, with parameters "
        "(e.g. 'krum(f=2)', 'trimmed_mean(trim=1)') or per module ('heads/**:median;mean'); "
        "see fedjax_m3t/aggregation/specs.py; secagg: the mean by simulated secure "
        "aggregation (--secagg_* flags).",
    )
    guard_max_norm_ratio: float | None = _field(
        None,
        "Also reject client updates whose norm exceeds this many times the cohort's median "
        "(non-finite updates are always rejected).",
    )
    # --algorithm=qffl / afl (fedjax_m3t.algorithms.fair): fair aggregation.
    qffl_q: float = _field(1.0, "--algorithm=qffl: q of q-FFL (0: FedAvg).")
    afl_lr: float = _field(0.1, "--algorithm=afl: step size of the mixture over clients.")
    # --algorithm=hierarchical (fedjax_m3t.hierarchy): clients -> the data's groups -> cloud.
    cloud_every: int = _field(
        2,
        "--algorithm=hierarchical: the cloud averages the groups every this many rounds "
        "(HF-FM's --gaf; 1 with edge_every 1: flat FedAvg; 0: never, edge only).",
    )
    edge_every: int = _field(
        1, "--algorithm=hierarchical: groups average their clients every this many rounds."
    )
    edge_modules: tuple[str, ...] = _field(
        (),
        "--algorithm=hierarchical: module patterns averaged at the groups only, never at the "
        "cloud (group-personalised, e.g. adapters/**).",
    )
    secagg_graph: str = _field(
        "complete",
        "--aggregator=secagg: neighbour graph, complete (SecAgg) or harary (SecAgg+).",
        choices=("complete", "harary"),
    )
    secagg_degree: int = _field(8, "--secagg_graph=harary: even number of neighbours.")
    secagg_dropout: float = _field(0.0, "--aggregator=secagg: fraction of clients that drop.")
    secagg_threshold: float = _field(
        0.5, "--aggregator=secagg: fraction of a client's neighbours needed to unmask."
    )
    secagg_bits: int = _field(0, "--aggregator=secagg: ring bits (0: the fewest that cannot wrap).")
    secagg_precision: int = _field(16, "--aggregator=secagg: fixed-point bits (grid 2^-f).")
    secagg_clip: float = _field(1.0, "--aggregator=secagg: per-coordinate clip of the deltas.")
    secagg_weight_bound: int = _field(
        1024, "--aggregator=secagg: largest client weight (examples); larger ones are clipped."
    )
    dp_sgd_clip: float = _field(
        0.0, "Student-level DP-SGD: per-example L2 clip in local training (0: off)."
    )
    dp_sgd_noise_multiplier: float = _field(
        0.0, "Student-level DP-SGD: noise std / clip on each step's summed gradients."
    )
    local_dp_clip: float = _field(0.0, "Local DP: L2 clip of each client's update (0: off).")
    local_dp_noise_multiplier: float = _field(
        0.0, "Local DP: noise std / clip added to each client's update before it leaves."
    )
    # The personalised algorithms (fedjax_m3t/personalization/registry.py).
    fine_tune_steps: int = _field(5, "fedavg_ft: local fine-tuning steps after the last round.")
    fedrep_head_steps: int = _field(
        -1, "fedrep: head-only steps of each round's local_steps (-1: half, rounded up)."
    )
    ditto_lambda: float = _field(0.1, "ditto: proximal weight of the personal model.")
    ditto_steps: int = _field(0, "ditto: personal-model steps per round (0: local_steps).")
    tap_margin: float = _field(0.01, "tap: stage-1 replacement margin.")
    tap_small_margin: float = _field(0.005, "tap: the margin of tap_small_margin_tasks.")
    tap_small_margin_tasks: tuple[str, ...] = _field((), "tap: tasks with the smaller margin.")
    tap_no_replacement: bool = _field(False, "tap: ablation without stage-1 replacement.")
    tap_no_distill: bool = _field(False, "tap: ablation without stage-2 distillation.")
    tap_distill_weight: float = _field(2e-3, "tap: stage-2 distillation weight w.")
    tap_distill_boost: float = _field(500.0, "tap: multiplier of w for tap_boost_tasks.")
    tap_boost_tasks: tuple[str, ...] = _field((), "tap: tasks with w * tap_distill_boost.")
    tap_temperature: float = _field(1.0, "tap: distillation temperature T.")

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "local_steps")
        if self.cloud_every < 0 or self.edge_every < 0:
            raise SettingsError("--cloud_every and --edge_every must be >= 0 (0: never).")
        if not 0.0 <= self.secagg_dropout <= 1.0:
            raise SettingsError(f"--secagg_dropout must be in [0, 1], got {self.secagg_dropout}.")
        if self.secagg_graph == "harary" and (self.secagg_degree < 2 or self.secagg_degree % 2):
            raise SettingsError(f"--secagg_degree must be even and >= 2, got {self.secagg_degree}.")
        for kind in ("dp_sgd", "local_dp"):
            clip, noise = getattr(self, f"{kind}_clip"), getattr(self, f"{kind}_noise_multiplier")
            if clip < 0 or noise < 0 or (noise > 0 and clip == 0):
                raise SettingsError(
                    f"--{kind}_noise_multiplier={noise} needs --{kind}_clip > 0 (got {clip}); "
                    "both must be >= 0."
                )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig(_Group):
    """The rounds: how many, how many clients each, on which devices, from which seed."""

    rounds: int = _field(40, "Federated rounds.")
    cohort_size: int = _field(0, "Clients per round (0: 8, or all if fewer).")
    chunk_size: int = _field(
        0, "Clients vmapped at once per device (0: auto; see default_chunk_size)."
    )
    num_devices: int = _field(0, "Devices to shard the cohort over (0: all).")
    seed: int = _field(0, "Seed of data, init and rounds.")
    attack: str = _field(
        "none",
        "Simulated attack by --attack_fraction of the institutions (fedjax_m3t/attacks/).",
        choices=attack_plan.ATTACKS,
    )
    attack_fraction: float = _field(0.0, "Share of institutions that attack, in [0, 1].")

    def __post_init__(self):
        super().__post_init__()
        if self.rounds < 0:
            raise SettingsError(f"--rounds must be >= 0, got {self.rounds}.")
        if not 0.0 <= self.attack_fraction <= 1.0:
            raise SettingsError(f"--attack_fraction must be in [0, 1], got {self.attack_fraction}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputConfig(_Group):
    """What the run writes and reports."""

    workdir: str | None = _field(None, "Output dir: config.json, metrics.jsonl, checkpoints.")
    checkpoint_every: int = _field(10, "Checkpoint every this many rounds.")
    eval_every: int = _field(10, "Evaluate on the test split every this many rounds.")
    tensorboard: bool = _field(False, "Also write TensorBoard events to <workdir>/tb.")
    baselines: bool = _field(
        False, "Also train centralised and local-only baselines with the same budget."
    )
    group_by: tuple[str, ...] = _field((), "Table columns to report test metrics by (e.g. sex).")
    resume: str = _field(
        "auto",
        "auto: continue the --workdir's checkpoint only if it was written with these "
        "settings (else an error naming what changed); force: continue it anyway.",
        choices=("auto", "force"),
    )

    def __post_init__(self):
        super().__post_init__()
        if self.group_by and not self.baselines:
            raise SettingsError("--group_by reports per-group metrics with --baselines; add it.")
        if self.tensorboard and not self.workdir:
            raise SettingsError("--tensorboard writes to <workdir>/tb: add --workdir.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrivacyConfig(_Group):
    """Central user-level DP-FedAvg (fedjax_m3t/privacy/central.py) and its accounting."""

    dp_clip: float = _field(
        0.0, "DP-FedAvg: L2 clip of each institution's update (> 0 turns central DP on)."
    )
    dp_noise_multiplier: float = _field(
        0.0, "DP-FedAvg: server noise std / clip (0 with --target_epsilon: calibrated)."
    )
    dp_clip_per_module: tuple[str, ...] = _field(
        (), "DP-FedAvg: clip these module patterns separately (equal shares of clip^2)."
    )
    dp_adaptive_quantile: float = _field(
        0.0, "DP-FedAvg: adaptive clipping to this unclipped quantile (0: fixed clip)."
    )
    dp_adaptive_lr: float = _field(0.2, "DP-FedAvg: adaptive clipping's learning rate.")
    dp_delta: float = _field(1e-5, "DP-FedAvg: the delta epsilon is reported at.")
    target_epsilon: float = _field(
        0.0,
        "DP-FedAvg: the epsilon budget at --dp_delta (needs --dp_clip). Without "
        "--dp_noise_multiplier the noise is calibrated to spend it in --rounds; with "
        "one, training stops when it is spent.",
    )
    dp_accountant: str = _field("rdp", "DP-FedAvg accountant.", choices=("rdp", "pld"))

    def __post_init__(self):
        super().__post_init__()
        for name in ("dp_clip", "dp_noise_multiplier", "target_epsilon", "dp_adaptive_lr"):
            if getattr(self, name) < 0:
                raise SettingsError(f"--{name} must be >= 0, got {getattr(self, name)}.")
        if not 0 < self.dp_delta < 1:
            raise SettingsError(f"--dp_delta must be in (0, 1), got {self.dp_delta}.")
        if not 0 <= self.dp_adaptive_quantile < 1:
            raise SettingsError("--dp_adaptive_quantile must be in [0, 1).")
        uses_dp = (
            self.dp_noise_multiplier or self.target_epsilon or self.dp_adaptive_quantile
        ) or self.dp_clip_per_module
        if uses_dp and not self.dp_clip:
            raise SettingsError("Central DP needs --dp_clip > 0 (the L2 clip of each update).")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a training run is built from (see the module docstring)."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    algorithm: AlgorithmConfig = dataclasses.field(default_factory=AlgorithmConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)

    @classmethod
    def from_flat(cls, values: dict) -> "TrainConfig":
        """A config from {field name: value} (the flag names); absent fields keep defaults."""
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise SettingsError(f"No such settings: {unknown}.")
        return cls(
            **{
                group: GROUPS[group](**{k: v for k, v in values.items() if FIELDS[k] == group})
                for group in GROUPS
            }
        )

    def flat(self) -> dict:
        """{field name: value} over every group."""
        return {name: getattr(getattr(self, group), name) for name, group in FIELDS.items()}

    def override(self, **values) -> "TrainConfig":
        """A copy with some fields, named as their flags, changed (checked again)."""
        return TrainConfig.from_flat({**self.flat(), **values})

    def to_json(self) -> dict:
        """The config as JSON values (what config.json holds): {group: {field: value}}."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> dict:
        """The fields a resumed run must share with its checkpoint, as JSON values."""
        flat = json.loads(json.dumps(self.flat()))
        return {k: v for k, v in flat.items() if k not in RESUMABLE}


GROUPS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
# Field (= flag) name -> its group's name.
FIELDS = {f.name: group for group, cls in GROUPS.items() for f in dataclasses.fields(cls)}


def _coerce(field: dataclasses.Field, value):
    """`value` as the field's type (lists as tuples, ints as floats), else SettingsError."""
    kind, optional = _kind(field)
    if value is None and optional:
        return None
    if kind is tuple and isinstance(value, list | tuple):
        # Comma-separated items, as in the list flags.
        items = [part for item in value for part in str(item).split(",")]
        return tuple(item for item in items if item)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise SettingsError(f"--{field.name} must be of type {kind.__name__}, got {value!r}.")


def _kind(field: dataclasses.Field) -> tuple[type, bool]:
    """(the field's type: bool, int, float, str or tuple; whether None is allowed)."""
    args = typing.get_args(field.type)
    if isinstance(field.type, types.UnionType):
        (kind,) = [a for a in args if a is not type(None)]
        return kind, True
    return typing.get_origin(field.type) or field.type, False


def define_flags(
    flag_values: flags.FlagValues = flags.FLAGS, sys_argv: Sequence[str] | None = None
) -> None:
    """Defines a flag per config field, --config and --preset.

    Args:
      flag_values: where to define them.
      sys_argv: the command line the --config overrides are read from (None:
        sys.argv; ml_collections looks for them when --config is parsed).
    """
    definers = {
        bool: flags.DEFINE_bool,
        int: flags.DEFINE_integer,
        float: flags.DEFINE_float,
        str: flags.DEFINE_string,
        tuple: flags.DEFINE_list,
    }
    for group in GROUPS.values():
        for field in dataclasses.fields(group):
            kind, _ = _kind(field)
            default, text = field.default, field.metadata["help"]
            if field.metadata["choices"] is not None:
                flags.DEFINE_enum(
                    field.name, default, field.metadata["choices"], text, flag_values=flag_values
                )
            else:
                default = list(default) if kind is tuple else default
                definers[kind](field.name, default, text, flag_values=flag_values)
    # ml_collections applies the --config.<group>.<field> overrides while it defines and
    # parses the flag, and fails with a traceback on a field the config lacks: leave
    # those out, so that absl reports them as unknown flags (one-line errors).
    argv = [a for a in (sys.argv if sys_argv is None else sys_argv) if not _bad_override(a)]
    config_flags.DEFINE_config_file(
        "config",
        DEFAULT_CONFIG_FILE,
        "A config file whose get_config() returns a ConfigDict of the groups data, model, "
        "algorithm, run, output (experiments/configs/); its fields are overridden as "
        "--config.model.width=64. Flags given on the command line win.",
        flag_values=flag_values,
        sys_argv=argv,
    )
    flags.DEFINE_enum(
        "preset",
        None,
        list(PRESETS),
        "Defaults for unset flags: experiments/configs/<preset>.py ('tiny': CI).",
        flag_values=flag_values,
    )


def _bad_override(arg: str) -> bool:
    """Whether `arg` is a --config.<path> override naming no <group>.<field> of the config."""
    match = re.match(r"^--?config\.([^=]*)", arg)
    if match is None:
        return False
    group, _, name = match.group(1).partition(".")
    return FIELDS.get(name) != group


def from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """The config of parsed flags (defined by `define_flags`), checked.

    Raises:
      SettingsError: for settings that are invalid or set twice.
    """
    file_flag = flag_values["config"]
    overrides = config_flags.get_override_values(file_flag)
    if flag_values.preset:
        if file_flag.present:
            raise SettingsError(
                f"--preset={flag_values.preset} and --config both name a config file; "
                f"use one (--preset={flag_values.preset} is --config=experiments/configs/"
                f"{flag_values.preset}.py)."
            )
        base = load_preset(flag_values.preset)
        base.update_from_flattened_dict(overrides)
    else:
        base = flag_values.config
        if isinstance(base, config_flags.config_flags._ErrorConfig):  # noqa: SLF001
            # ml_collections defers a file it could not read to the first access.
            raise SettingsError(
                f"--config={config_flags.get_config_filename(file_flag)}: the config file "
                "cannot be read (no such file?); give the path of a .py file with "
                "get_config(), e.g. --config=experiments/configs/tiny.py."
            )
    twice = [k for k in overrides if k.rpartition(".")[2] in FIELDS and _given(flag_values, k)]
    if twice:
        raise SettingsError(
            f"--config.{twice[0]} and --{twice[0].rpartition('.')[2]} set the same field; keep one."
        )
    values = _flatten(base)
    given = {name for name in FIELDS if flag_values[name].present}
    values.update({name: flag_values[name].value for name in given})
    given |= {key.rpartition(".")[2] for key in overrides}
    return TrainConfig.from_flat(with_csv_defaults(values, given))


def _given(flag_values: flags.FlagValues, override: str) -> bool:
    return bool(flag_values[override.rpartition(".")[2]].present)


def load_preset(name: str) -> config_dict.ConfigDict:
    """The ConfigDict of experiments/configs/<name>.py."""
    if name not in PRESETS:
        raise SettingsError(f"--preset={name} is unknown; choose from {sorted(PRESETS)}.")
    return importlib.import_module(f"{configs_package.__name__}.{name}").get_config()


def to_config_dict(config: TrainConfig) -> config_dict.ConfigDict:
    """The config as a ConfigDict for config files; unset (None) fields keep their type."""
    groups = {}
    for group, cls in GROUPS.items():
        values = {}
        for field in dataclasses.fields(cls):
            value = getattr(getattr(config, group), field.name)
            kind, _ = _kind(field)
            values[field.name] = config_dict.placeholder(kind) if value is None else value
        groups[group] = config_dict.ConfigDict(values)
    return config_dict.ConfigDict(groups)


def from_config_dict(config: config_dict.ConfigDict) -> TrainConfig:
    """The checked TrainConfig of a config file's ConfigDict (or of config.json)."""
    return TrainConfig.from_flat(_flatten(config))


def _flatten(config) -> dict:
    """{field name: value} of a {group: {field: value}} mapping; unknown names raise."""
    values = {}
    for group, fields in dict(config).items():
        if group not in GROUPS:
            raise SettingsError(f"The config has a group {group!r}; the groups are {list(GROUPS)}.")
        for name, value in dict(fields).items():
            if FIELDS.get(name) != group:
                raise SettingsError(
                    f"The config's {group} group has no field {name!r}"
                    + (f" (it is in {FIELDS[name]})." if name in FIELDS else ".")
                )
            values[name] = value
    return values
