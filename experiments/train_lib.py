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
"""The training driver behind experiments/train.py, as a testable function.

`train(settings)` takes the flag values as a plain dict, turns them into typed
library objects (federation, model, algorithm, simulation config), checks them
for inconsistencies before any work starts, and calls
`fedjax_m3t.simulation.run.run`. Only this module and the binary read settings.
"""

import ast
import importlib
import inspect
import json
import os

import jax
import numpy as np

from fedjax_m3t import evaluation
from fedjax_m3t import policy as policy_lib
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.data import combine, multilevel, synthetic, tabular
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import text as text_lib
from fedjax_m3t.evaluation import baselines, equity
from fedjax_m3t.models import linear, m3t
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import loop as run_lib

# Datasets read from downloaded files through a TFDS builder (--data_dir, --manual_dir):
# name -> the module in fedjax_m3t.data.builders with its federation_from_builder.
BUILDER_DATASETS = {
    "assistments2009": "assistments2009",
    "ednet_kt1": "ednet_kt1",
    "asap_aes": "asap_aes",
    "oulad": "oulad",
    "scienceqa": "scienceqa",
}
DATASETS = ("synthetic", "csv") + tuple(BUILDER_DATASETS) + multilevel.DATASETS
MODELS = ("m3t", "linear")
DEFAULT_COHORT = 8  # Clients per round when --cohort_size is 0 (and there are enough).

PRESETS = {
    # Seconds on CPU: smoke tests and CI.
    "tiny": {
        "num_clients": 4,
        "mean_examples": 24,
        "rounds": 2,
        "local_steps": 2,
        "batch_size": 8,
        "width": 16,
        "depth": 1,
        "num_heads": 2,
        "checkpoint_every": 1,
        "eval_every": 1,
    },
}


class SettingsError(ValueError):
    """Settings that cannot work together; the message says what to change."""


def _positive(settings: dict, *names: str) -> None:
    for name in names:
        if settings[name] is None or settings[name] < 1:
            raise SettingsError(f"--{name} must be >= 1, got {settings[name]}.")


def build_federation(settings: dict) -> federation_lib.Federation:
    """The federation named by --dataset (restricted to --modalities if given)."""
    return load_data(settings)[0]


def load_data(settings: dict) -> tuple[federation_lib.Federation, tabular.TabularFederation | None]:
    """The federation named by --dataset, and the table it came from (None if none).

    The table (csv and the multilevel datasets) carries the rows behind each test
    example, for per-group metrics (`table_groups`).
    """
    table = None
    names = settings["dataset"].split("+")
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise SettingsError(
            f"--dataset={settings['dataset']}: {unknown} unknown; choose from {DATASETS} "
            "(several downloaded datasets joined by '+' make multi-modal institutions)."
        )
    if len(names) > 1:
        not_files = [n for n in names if n not in BUILDER_DATASETS]
        if not_files:
            raise SettingsError(
                f"--dataset={settings['dataset']}: only downloaded datasets "
                f"{tuple(BUILDER_DATASETS)} can be combined with '+', not {not_files}."
            )
        if not settings.get("text_length"):
            # One text length for all parts, so that their texts stack.
            longest = max(getattr(builder_module(n), "TEXT_LENGTH", 64) for n in names)
            settings = {**settings, "text_length": longest}
        parts = [_from_builder(n, settings) for n in names]
        try:
            federation = combine.combine_by_size(parts)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        logging_lib.log(
            f"Combined {' + '.join(names)}: institution k holds the k-th largest client of "
            "each dataset (fedjax_m3t/data/combine.py)."
        )
    elif names[0] == "csv" or names[0] in multilevel.DATASETS:
        table = _table(names[0], settings)
        federation = table.federation
    else:
        federation = _single(names[0], settings)
    modalities = [m for m in settings.get("modalities") or [] if m]
    if modalities:
        unknown = sorted(set(modalities) - set(federation.spec.modalities))
        if unknown:
            raise SettingsError(
                f"--modalities names {unknown}, which this dataset lacks; it has "
                f"{list(federation.spec.modalities)}."
            )
        federation = federation.with_modalities(modalities)
    return federation, table


def _single(name: str, settings: dict) -> federation_lib.Federation:
    """The federation of --dataset=synthetic or of a downloaded dataset."""
    if name == "synthetic":
        return _synthetic(settings)
    return _from_builder(name, settings)


def _table(name: str, settings: dict) -> tabular.TabularFederation:
    """The table federation of --dataset=csv or a multilevel dataset."""
    if name == "csv":
        return _from_table_file(settings)
    try:
        return multilevel.load(
            name,
            seed=settings["seed"],
            test_fraction=settings["test_fraction"],
            standardize_targets=settings["standardize_targets"],
        )
    except ImportError as e:
        raise SettingsError(str(e)) from None


def text_encoding(settings: dict, default_length: int = 64) -> text_lib.TextEncoding:
    """The --text_encoding / --text_length choice (cached under <data_dir>/text_cache).

    --text_length 0 (unset) takes `default_length`, the dataset's own.

    'auto' is frozen MiniLM embeddings when its packages are installed (the fast
    default for real text on CPU), else word hashing; the choice is printed.
    """
    kind = settings.get("text_encoding") or "auto"
    if settings.get("text_encoder") == "minilm" and kind not in ("wordpiece", "auto"):
        raise SettingsError(
            "--text_encoder=minilm reads WordPiece ids: use --text_encoding=wordpiece "
            "(or --text_encoding=minilm with the default --text_encoder=learned for "
            "frozen, cached MiniLM embeddings)."
        )
    if kind == "auto":
        if settings.get("text_encoder") == "minilm":
            kind = "wordpiece"
        elif text_lib.minilm_available():
            kind = "minilm"
        else:
            kind = "hash"
            logging_lib.log(
                "--text_encoding=auto: MiniLM is not installed, so texts are word-hashed "
                f"({text_lib.INSTALL_HINT} for frozen pretrained embeddings)."
            )
    cache = os.path.join(settings["data_dir"], "text_cache") if settings.get("data_dir") else None
    try:
        return text_lib.TextEncoding(
            kind=kind, length=settings.get("text_length") or default_length, cache_dir=cache
        )
    except ValueError as e:
        raise SettingsError(f"--text_encoding/--text_length: {e}") from None


def builder_module(name: str):
    """The fedjax_m3t.data.builders module of a downloaded dataset."""
    return importlib.import_module(f"fedjax_m3t.data.builders.{BUILDER_DATASETS[name]}")


def dataset_options(name: str, items: list[str], accepted, taken: dict) -> dict[str, object]:
    """--dataset_options=key=value,... as keyword arguments of the dataset's loader.

    Values are Python literals (8, 0.5, True, None) or else strings.

    Raises:
      SettingsError: for an entry without '=', or a key the loader does not take
        (listing the ones it does) or that a flag already sets.
    """
    own = sorted(k for k in accepted if k not in ("builder", *_COMMON_OPTIONS))
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--dataset_options entry {item!r} must look like key=value.")
        if key not in own:
            where = f"its own options are {own}" if own else "it has no options of its own"
            raise SettingsError(
                f"--dataset_options: {name} takes no option {key!r}; {where}"
                + (" (set that one with its flag)." if key in taken else ".")
            )
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


# federation_from_builder arguments that flags set for every dataset.
_COMMON_OPTIONS = (
    "test_fraction", "seed", "manual_dir", "partition", "num_clients", "alpha", "strict",
    "text_encoding", "institution",
)  # fmt: skip


def _from_builder(name: str, settings: dict) -> federation_lib.Federation:
    """The federation of a downloaded dataset, built in --data_dir on first use."""
    if not settings.get("data_dir"):
        raise SettingsError(
            f"--dataset={name} needs --data_dir=<TFDS data dir> (and the downloaded files in "
            "--manual_dir, default <data_dir>/downloads/manual; python -m "
            "experiments.generate_data writes small files in the real formats)."
        )
    module = builder_module(name)
    function = module.federation_from_builder
    accepted = inspect.signature(function).parameters
    kwargs = {
        "test_fraction": settings["test_fraction"],
        "seed": settings["seed"],
        "manual_dir": settings.get("manual_dir"),
        "partition": settings.get("partition") or "natural",
        "num_clients": settings["num_clients"],
        "alpha": settings.get("dirichlet_alpha"),
        "strict": bool(settings.get("strict")),
    }
    if "text_encoding" in accepted:
        kwargs["text_encoding"] = text_encoding(settings, getattr(module, "TEXT_LENGTH", 64))
    if settings.get("institution"):
        if "institution" not in accepted:
            raise SettingsError(
                f"--institution={settings['institution']}: --dataset={name} has one "
                "institution field only; drop the flag."
            )
        kwargs["institution"] = settings["institution"]
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    kwargs.update(dataset_options(name, settings.get("dataset_options") or [], accepted, kwargs))
    try:
        return function(settings["data_dir"], **kwargs)
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise SettingsError(f"--dataset={name}: {e}") from None


def _synthetic(settings: dict) -> federation_lib.Federation:
    config = synthetic.SyntheticConfig(
        num_clients=settings["num_clients"],
        mean_examples=settings["mean_examples"],
        quantity_skew=settings["quantity_skew"],
        label_skew_alpha=settings["label_skew_alpha"],
        modality_missing_prob=settings["modality_missing_prob"],
        task_missing_prob=settings["task_missing_prob"],
        seed=settings["seed"],
    )
    return synthetic.make_education_federation(config)


def parse_targets(specs: list[str]) -> dict[str, str]:
    """['y1:regression', 'y2:classification'] -> {'y1': 'regression', 'y2': 'classification'}."""
    targets = {}
    for item in specs:
        column, _, kind = item.partition(":")
        if not column or kind not in tabular.TARGET_KINDS:
            raise SettingsError(
                f"--target_columns entry {item!r} must look like column:regression or "
                "column:classification."
            )
        targets[column] = kind
    if not targets:
        raise SettingsError("--dataset=csv needs --target_columns, e.g. score:regression.")
    return targets


def _read_table(path: str):
    import pandas as pd  # noqa: PLC0415 - optional dependency of the 'real' extra.

    return (pd.read_parquet if path.endswith((".parquet", ".pq")) else pd.read_csv)(path)


def _from_table_file(settings: dict) -> tabular.TabularFederation:
    """A federation from --csv_path (CSV or Parquet) and the column flags."""
    import pandas as pd  # noqa: PLC0415 - optional dependency of the 'real' extra.

    path = settings["csv_path"]
    if not path:
        raise SettingsError("--dataset=csv needs --csv_path=<file.csv or file.parquet>.")
    if not os.path.exists(path):
        raise SettingsError(f"--csv_path={path} does not exist.")
    for flag in ("client_column", "feature_columns"):
        if not settings[flag]:
            raise SettingsError(f"--dataset=csv needs --{flag}.")
    df = _read_table(path)
    features = list(settings["feature_columns"])
    categorical = [
        c for c in features if c in df.columns and not pd.api.types.is_numeric_dtype(df[c])
    ]
    try:
        return tabular.federation_from_dataframe(
            df,
            client_column=settings["client_column"],
            feature_columns=features,
            targets=parse_targets(settings["target_columns"]),
            group_column=settings["group_column"] or None,
            categorical_columns=categorical,
            test_fraction=settings["test_fraction"],
            seed=settings["seed"],
            standardize_targets=settings["standardize_targets"],
            student_column=settings.get("student_column") or None,
            time_column=settings.get("time_column") or None,
        )
    except ValueError as e:
        raise SettingsError(f"{path}: {e}") from None


def check_federation(federation: federation_lib.Federation) -> None:
    """Raises SettingsError if a task has no labels or a modality no examples anywhere."""
    for task, counts in federation.label_coverage().items():
        if counts.sum() == 0:
            raise SettingsError(
                f"No client has a label for task {task!r}: nothing can train its head. "
                "Lower --task_missing_prob or drop the task."
            )
    if all(c.sum() == 0 for c in federation.modality_coverage().values()):
        raise SettingsError("No client holds any modality: there is nothing to learn from.")


def build_model(settings: dict, spec: spec_lib.DataSpec):
    """The model named by --model for the data's spec, from the model flags."""
    if settings["model"] not in MODELS:
        raise SettingsError(f"--model={settings['model']} is unknown; choose from {MODELS}.")
    if settings["model"] == "linear":
        try:
            return linear.build_linear_model(spec)
        except ValueError as e:
            raise SettingsError(str(e)) from None
    _positive(settings, "width", "depth", "num_heads")
    if settings["width"] % settings["num_heads"]:
        raise SettingsError(
            f"--width={settings['width']} must be divisible by --num_heads={settings['num_heads']}."
        )
    try:
        config = m3t.M3TConfig(
            width=settings["width"],
            depth=settings["depth"],
            num_heads=settings["num_heads"],
            mlp_dim=2 * settings["width"],
            lora_rank=settings["lora_rank"],
            num_prompts=settings["num_prompts"],
            text_encoder=settings.get("text_encoder") or "learned",
            text_lora_rank=settings.get("text_lora_rank", 4),
        )
        return m3t.build_m3t_model(spec, config)
    except (ValueError, ImportError) as e:
        raise SettingsError(str(e)) from None


def build_algorithm(settings: dict, model):
    """The named algorithm with the module policy from --federated/--local/--frozen."""
    _positive(settings, "local_steps")
    frozen = list(settings["frozen"])
    if settings.get("text_encoder") == "minilm" and not any(
        p.startswith("encoders/text") for p in settings["federated"] + settings["local"] + frozen
    ):
        # The pretrained weights are the foundation model: tune them through LoRA only,
        # unless a module flag says otherwise.
        frozen.append("encoders/text/minilm")
        logging_lib.log("--text_encoder=minilm: freezing encoders/text/minilm (LoRA trains).")
    policy = policy_lib.from_flags(settings["federated"], settings["local"], frozen)
    local = local_config(settings)
    try:
        return registry.build_algorithm(
            settings["algorithm"],
            model,
            local=local,
            client_learning_rate=settings["client_lr"],
            server_learning_rate=settings["server_lr"],
            client_optimizer_name=settings["client_optimizer"],
            prox_mu=settings["prox_mu"],
            momentum=settings["server_momentum"],
            policy=policy,
        )
    except ValueError as e:
        raise SettingsError(str(e)) from None


def local_config(settings: dict) -> local_training.LocalTrainingConfig:
    """Local steps and batch size (0: each client's whole data) from the flags."""
    return local_training.LocalTrainingConfig(
        local_steps=settings["local_steps"], batch_size=settings["batch_size"] or None
    )


def table_groups(settings: dict, table: tabular.TabularFederation | None) -> dict:
    """Group labels of a table federation, for per-group test metrics.

    Args:
      settings: the flags (--dataset, --csv_path, --group_by).
      table: the table federation the run trains on (from `load_data`), or None.

    Returns:
      {'group': the table's group column per school (e.g. hsb82's sector), if any;
       column: per test row [num_clients, n_test] for each --group_by column};
      {} for data sets that are not tables.
    """
    name = settings["dataset"]
    if table is None:
        if settings.get("group_by"):
            raise SettingsError(f"--group_by needs a table; --dataset={name} is not one.")
        return {}
    groups = {"group": table.groups} if table.groups else {}
    if not settings.get("group_by"):
        return groups
    frame = _read_table(settings["csv_path"]) if name == "csv" else multilevel.load_frame(name)
    size = table.federation.test["mask"].shape[1]
    for column in settings["group_by"]:
        if column not in frame.columns:
            raise SettingsError(f"--group_by={column} is not a column of {list(frame.columns)}.")
        groups[column] = equity.groups_from_rows(frame[column].to_numpy(), table.test_rows, size)
    return groups


def simulation_config(settings: dict, num_clients: int) -> run_lib.SimulationConfig:
    """The simulation config; checks the cohort against the federation.

    --cohort_size 0 (the default) samples min(8, clients) institutions per round.
    """
    if not settings["cohort_size"]:
        settings = {**settings, "cohort_size": min(DEFAULT_COHORT, num_clients)}
    _positive(settings, "cohort_size")
    if settings["cohort_size"] > num_clients:
        raise SettingsError(
            f"--cohort_size={settings['cohort_size']} exceeds the {num_clients} clients of the "
            "federation."
        )
    if settings["rounds"] < 0:
        raise SettingsError(f"--rounds must be >= 0, got {settings['rounds']}.")
    return run_lib.SimulationConfig(
        rounds=settings["rounds"],
        cohort_size=settings["cohort_size"],
        chunk_size=settings["chunk_size"] or None,
        num_devices=settings["num_devices"] or None,
        seed=settings["seed"],
        workdir=settings["workdir"],
        checkpoint_every=settings["checkpoint_every"],
        eval_every=settings["eval_every"],
        tensorboard=settings["tensorboard"],
    )


def train(settings: dict) -> run_lib.SimulationResult:
    """Builds everything from `settings` (flag name -> value) and runs it.

    Raises:
      SettingsError: before any training, for inconsistent settings.
    """
    say = logging_lib.log
    federation, table = load_data(settings)
    check_federation(federation)
    if table is None:  # A table's loader has printed its summary, with groups and drops.
        say(federation.summary())
    model = build_model(settings, federation.spec)
    algorithm = build_algorithm(settings, model)
    say("Module policy:\n" + algorithm.policy.describe())
    config = simulation_config(settings, federation.num_clients)
    if settings.get("group_by") and not settings.get("baselines"):
        raise SettingsError("--group_by reports per-group metrics with --baselines; add it.")
    groups = table_groups(settings, table) if settings.get("baselines") else {}
    fingerprint = {k: v for k, v in settings.items() if k not in _RESUMABLE}
    if config.workdir:
        os.makedirs(config.workdir, exist_ok=True)
        with open(os.path.join(config.workdir, "config.json"), "w") as f:
            json.dump(settings, f, indent=2, sort_keys=True)
    else:
        say("No --workdir: metrics and checkpoints are not saved.")
    result = run_lib.run(algorithm, model, federation, config, fingerprint=fingerprint)
    reports = {"global": result.global_report, "personal": result.personal_report}
    if not any(jax.tree.leaves(algorithm.policy.local)):
        del reports["personal"]
        say("\nTest metrics of the global model (no --local modules, so each institution's")
        say("view is the global model):")
    else:
        say("\nTest metrics (global model, and each institution's personalised view):")
    say(evaluation.format_table(model, federation.client_names, reports))
    if settings["dataset"] in BUILDER_DATASETS:
        # A dataset's own metric (e.g. ASAP's per-set kappa) where it has one.
        report = getattr(builder_module(settings["dataset"]), "test_report", None)
        if report is not None:
            predictions = evaluation.predict(model, result.server_state.params, federation.test)
            say(report(federation, predictions))
    if settings.get("baselines"):
        say("\nBaselines with the same example-steps, on the same test sets:")
        comparison = baselines.compare(
            model,
            federation,
            result,
            policy=algorithm.policy,
            client_optimizer=registry.client_optimizer(
                settings["client_optimizer"], settings["client_lr"]
            ),
            local=local_config(settings),
            rounds=config.rounds,
            cohort_size=config.cohort_size,
            seed=config.seed,
            groups=groups,
        )
        say(comparison.text)
        reports.update({k: comparison.reports[k] for k in ("centralised", "local-only")})
    if config.workdir:
        with open(os.path.join(config.workdir, "final_metrics.json"), "w") as f:
            json.dump(_reports_json(reports, federation.client_names), f, indent=2)
    return result


# Settings that may change between a run and its resumption.
_RESUMABLE = (
    "baselines",
    "group_by",
    "rounds",
    "workdir",
    "checkpoint_every",
    "eval_every",
    "tensorboard",
    "num_devices",
    "chunk_size",
)


def _reports_json(reports: dict, client_names) -> dict:
    def clean(d):
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}

    return {
        view: {
            "pooled": {t: clean(m) for t, m in r.pooled.items()},
            "per_client": {
                name: {t: clean(m) for t, m in c.items()}
                for name, c in zip(client_names, r.per_client, strict=True)
            },
        }
        for view, r in reports.items()
    }


def apply_preset(settings: dict, preset: str | None, explicitly_set: set[str]) -> dict:
    """Fills in a named preset's values for the settings the user did not set."""
    if not preset:
        return settings
    if preset not in PRESETS:
        raise SettingsError(f"--preset={preset} is unknown; choose from {sorted(PRESETS)}.")
    values = {k: v for k, v in PRESETS[preset].items() if k not in explicitly_set}
    return {**settings, **values}
