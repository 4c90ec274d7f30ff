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

`train(config)` takes a checked `experiments.config.TrainConfig` (from the
flags, a config file, or built in code), turns it into typed library objects
(federation, model, algorithm, simulation config), checks what needs the data
before any training starts, and calls `fedjax_m3t.simulation.run`. Only this
module, experiments/config.py and the binary read configs.
"""

import ast
import importlib
import inspect
import json
import os
from collections.abc import Sequence

import jax
import numpy as np

from experiments import central_privacy, checks
from experiments import config as config_lib
from fedjax_m3t import evaluation
from fedjax_m3t import metrics as metrics_lib
from fedjax_m3t import policy as policy_lib
from fedjax_m3t.algorithms import local_training, registry
from fedjax_m3t.attacks import plan as attack_plan_lib
from fedjax_m3t.data import columns as columns_lib
from fedjax_m3t.data import combine, tabular
from fedjax_m3t.data import federation as federation_lib
from fedjax_m3t.data import spec as spec_lib
from fedjax_m3t.data import text as text_lib
from fedjax_m3t.datasets import multilevel, synthetic
from fedjax_m3t.evaluation import baselines, equity, trivial
from fedjax_m3t.hierarchy import hierarchical, levels
from fedjax_m3t.models import linear, m3t
from fedjax_m3t.personalization import registry as personal_registry
from fedjax_m3t.personalization import tap
from fedjax_m3t.privacy import central, dp_sgd, local_dp
from fedjax_m3t.secure import aggregator as secure_aggregator
from fedjax_m3t.simulation import logging as logging_lib
from fedjax_m3t.simulation import loop as run_lib

DEFAULT_COHORT = 8  # Clients per round when --cohort_size is 0 (and there are enough).

# Raised for settings that cannot work together, by the config and by the builders here.
SettingsError = config_lib.SettingsError


def build_federation(config: config_lib.TrainConfig) -> federation_lib.Federation:
    """The federation named by --dataset (restricted to --modalities if given)."""
    return load_data(config)[0]


def load_data(
    config: config_lib.TrainConfig,
) -> tuple[federation_lib.Federation, tabular.Table | None]:
    """The federation named by --dataset, and the table it came from (None if none).

    The table (csv and the multilevel datasets) carries the rows behind each test
    example, for per-group metrics (`table_groups`).
    """
    table = None
    names = config.data.dataset.split("+")  # Known names (DataConfig checks them).
    if len(names) > 1:
        if not config.data.text_length:
            # One text length for all parts, so that their texts stack.
            longest = max(getattr(builder_module(n), "TEXT_LENGTH", 64) for n in names)
            config = config.override(text_length=longest)
        parts = [_from_builder(n, config) for n in names]
        try:
            federation = combine.combine_by_size(parts)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        logging_lib.log(
            f"Combined {' + '.join(names)}: institution k holds the k-th largest client of "
            "each dataset (fedjax_m3t/data/combine.py)."
        )
    elif names[0] == "csv" or names[0] in multilevel.DATASETS:
        table = _table(names[0], config)
        federation = table.federation
    else:
        federation = _single(names[0], config)
    modalities = list(config.data.modalities)
    if modalities:
        unknown = sorted(set(modalities) - set(federation.spec.modalities))
        if unknown:
            raise SettingsError(
                f"--modalities names {unknown}, which this dataset lacks; it has "
                f"{list(federation.spec.modalities)}."
            )
        federation = federation.with_modalities(modalities)
    return federation, table


def _single(name: str, config: config_lib.TrainConfig) -> federation_lib.Federation:
    """The federation of --dataset=synthetic or of a downloaded dataset."""
    if name == "synthetic":
        return _synthetic(config)
    return _from_builder(name, config)


def _table(name: str, config: config_lib.TrainConfig) -> tabular.Table:
    """The table federation of --dataset=csv or a multilevel dataset."""
    if name == "csv":
        return _from_table_file(config)
    try:
        return multilevel.load(
            name,
            seed=config.run.seed,
            test_fraction=config.data.test_fraction,
            standardize_targets=config.data.standardize_targets,
        )
    except ImportError as e:
        raise SettingsError(str(e)) from None


def text_encoding(
    config: config_lib.TrainConfig, default_length: int = 64
) -> text_lib.TextEncoding:
    """The --text_encoding / --text_length choice (cached under <data_dir>/text_cache).

    --text_length 0 (unset) takes `default_length`, the dataset's own.

    'auto' is frozen MiniLM embeddings when its packages are installed (the fast
    default for real text on CPU), else word hashing; the choice is printed.
    """
    kind, minilm = config.data.text_encoding, config.model.text_encoder == "minilm"
    if minilm and kind not in ("wordpiece", "auto"):
        raise SettingsError(
            "--text_encoder=minilm reads WordPiece ids: use --text_encoding=wordpiece "
            "(or --text_encoding=minilm with the default --text_encoder=learned for "
            "frozen, cached MiniLM embeddings)."
        )
    if kind == "auto":
        if minilm:
            kind = "wordpiece"
        elif text_lib.minilm_available():
            kind = "minilm"
        else:
            kind = "hash"
            logging_lib.log(
                "--text_encoding=auto: MiniLM is not installed, so texts are word-hashed "
                f"({text_lib.INSTALL_HINT} for frozen pretrained embeddings)."
            )
    data = config.data
    cache = os.path.join(data.data_dir, "text_cache") if data.data_dir else None
    try:
        return text_lib.TextEncoding(
            kind=kind, length=data.text_length or default_length, cache_dir=cache
        )
    except ValueError as e:
        raise SettingsError(f"--text_encoding/--text_length: {e}") from None


def builder_module(name: str):
    """The fedjax_m3t.datasets builder module of a downloaded dataset."""
    return importlib.import_module(
        f"fedjax_m3t.datasets.{config_lib.BUILDER_DATASETS[name]}.builder"
    )


def dataset_options(name: str, items: Sequence[str], accepted, taken: dict) -> dict[str, object]:
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


def _from_builder(name: str, config: config_lib.TrainConfig) -> federation_lib.Federation:
    """The federation of a downloaded dataset, built in --data_dir on first use."""
    data = config.data
    if not data.data_dir:
        raise SettingsError(
            f"--dataset={name} needs --data_dir=<TFDS data dir> (and the downloaded files in "
            "--manual_dir, default <data_dir>/downloads/manual; python -m "
            "experiments.generate_data writes small files in the real formats)."
        )
    module = builder_module(name)
    function = module.federation_from_builder
    accepted = inspect.signature(function).parameters
    kwargs = {
        "test_fraction": data.test_fraction,
        "seed": config.run.seed,
        "manual_dir": data.manual_dir,
        "partition": data.partition,
        "num_clients": data.num_clients,
        "alpha": data.dirichlet_alpha,
        "strict": data.strict,
    }
    if "text_encoding" in accepted:
        kwargs["text_encoding"] = text_encoding(config, getattr(module, "TEXT_LENGTH", 64))
    if data.institution:
        if "institution" not in accepted:
            raise SettingsError(
                f"--institution={data.institution}: --dataset={name} has one "
                "institution field only; drop the flag."
            )
        kwargs["institution"] = data.institution
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    kwargs.update(dataset_options(name, data.dataset_options, accepted, kwargs))
    try:
        return function(data.data_dir, **kwargs)
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise SettingsError(f"--dataset={name}: {e}") from None


def _synthetic(config: config_lib.TrainConfig) -> federation_lib.Federation:
    data = config.data
    return synthetic.make_education_federation(
        synthetic.SyntheticConfig(
            num_clients=data.num_clients,
            mean_examples=data.mean_examples,
            quantity_skew=data.quantity_skew,
            label_skew_alpha=data.label_skew_alpha,
            modality_missing_prob=data.modality_missing_prob,
            task_missing_prob=data.task_missing_prob,
            test_fraction=data.test_fraction,
            seed=config.run.seed,
        )
    )


def parse_targets(specs: Sequence[str]) -> dict[str, str]:
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


def _read_table(data: config_lib.DataConfig):
    return checks.read_table(data.csv_path, data.csv_encoding, data.csv_sep)


def _from_table_file(config: config_lib.TrainConfig) -> tabular.Table:
    """A federation from --csv_path (CSV or Parquet) and the column flags."""
    data = config.data
    path = data.csv_path
    if not path:
        raise SettingsError("--dataset=csv needs --csv_path=<file.csv or file.parquet>.")
    if not os.path.exists(path):
        raise SettingsError(f"--csv_path={path} does not exist.")
    for flag in ("client_column", "feature_columns"):
        if not getattr(data, flag):
            raise SettingsError(f"--dataset=csv needs --{flag}.")
    df = _read_table(data)
    features = list(data.feature_columns)
    targets = parse_targets(data.target_columns)
    try:
        df, categorical = column_kinds(df, features, targets, data.column_kinds)
        return tabular.federation_from_dataframe(
            df,
            client_column=data.client_column,
            feature_columns=features,
            targets=targets,
            group_column=data.group_column or None,
            categorical_columns=categorical,
            test_fraction=data.test_fraction,
            seed=config.run.seed,
            standardize_targets=data.standardize_targets,
            student_column=data.student_column or None,
            time_column=data.time_column or None,
            max_classes=data.max_classes,
        )
    except ValueError as e:
        raise SettingsError(f"{path}: {e}") from None


def column_kinds(df, features, targets: dict, declared_flags):
    """(frame with numeric text columns as numbers, categorical features) of a table file.

    Feature kinds come from --column_kinds or `columns.kinds`; a regression target
    must be numeric in every cell. Raises ValueError naming the column and rows.
    """
    declared = {}
    for item in declared_flags:
        column, _, kind = item.partition(":")
        if kind not in columns_lib.KINDS:
            raise SettingsError(
                f"--column_kinds entry {item!r} must look like column:"
                + " or column:".join(columns_lib.KINDS)
                + "."
            )
        if column not in features:
            raise SettingsError(
                f"--column_kinds entry {item!r}: {column!r} is not one of --feature_columns."
            )
        declared[column] = kind
    present = [c for c in features if c in df.columns]
    kinds = columns_lib.kinds(df, present, declared)
    regression = [c for c, k in targets.items() if k == "regression" and c in df.columns]
    columns_lib.kinds(df, regression, {c: "numeric" for c in regression})
    numeric = [c for c in present if kinds[c] == "numeric"] + regression
    categorical = [c for c in present if kinds[c] == "categorical"]
    return columns_lib.as_numbers(df, numeric), categorical


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


def build_model(config: config_lib.ModelConfig, spec: spec_lib.DataSpec):
    """The model named by --model for the data's spec, from the model flags."""
    if config.model == "linear":
        try:
            return linear.build_linear_model(spec)
        except ValueError as e:
            raise SettingsError(str(e)) from None
    try:
        m3t_config = m3t.M3TConfig(
            width=config.width,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_dim=2 * config.width,
            lora_rank=config.lora_rank,
            num_prompts=config.num_prompts,
            text_encoder=config.text_encoder,
            text_lora_rank=config.text_lora_rank,
        )
        return m3t.build_m3t_model(spec, m3t_config)
    except (ValueError, ImportError) as e:
        raise SettingsError(str(e)) from None


def build_algorithm(config: config_lib.TrainConfig, model, federation=None, aggregator=None):
    """The named algorithm with the module policy from --federated/--local/--frozen.

    --algorithm=hierarchical needs the federation (its groups are the tree's).
    `aggregator`: a registry name or an Aggregator (DP-FedAvg's, from --dp_clip);
    None: --aggregator.
    """
    algo = config.algorithm
    frozen = list(algo.frozen)
    if config.model.text_encoder == "minilm" and not any(
        p.startswith("encoders/text") for p in algo.federated + algo.local + algo.frozen
    ):
        # The pretrained weights are the foundation model: tune them through LoRA only,
        # unless a module flag says otherwise.
        frozen.append("encoders/text/minilm")
        logging_lib.log("--text_encoder=minilm: freezing encoders/text/minilm (LoRA trains).")
    policy = policy_lib.from_flags(algo.federated, algo.local, frozen)
    try:
        return registry.build_algorithm(
            algo.algorithm,
            model,
            local=local_config(algo),
            client_learning_rate=algo.client_lr,
            server_learning_rate=algo.server_lr,
            client_optimizer_name=algo.client_optimizer,
            prox_mu=algo.prox_mu,
            momentum=algo.server_momentum,
            policy=policy,
            aggregator=algo.aggregator if aggregator is None else aggregator,
            **_hierarchy(algo, federation),
            secagg=secagg_config(algo) if algo.aggregator == "secagg" else None,
            **privacy_kwargs(algo),
            personal=personal_config(algo),
            qffl_q=algo.qffl_q,
            afl_lr=algo.afl_lr,
            num_clients=None if federation is None else federation.num_clients,
        )
    except ValueError as e:
        raise SettingsError(str(e)) from None


def _hierarchy(algo: config_lib.AlgorithmConfig, federation) -> dict:
    """The tree and schedule of --algorithm=hierarchical ({} for the other algorithms)."""
    if algo.algorithm != "hierarchical":
        return {}
    if federation is None:
        raise SettingsError("--algorithm=hierarchical needs the federation's groups.")
    if not federation.groups:
        logging_lib.log("--algorithm=hierarchical: the data has no groups, so one group.")
    schedule = hierarchical.hffm_schedule(
        algo.cloud_every, tuple(algo.edge_modules), edge_every=algo.edge_every
    )
    return {"tree": levels.from_federation(federation), "schedule": schedule}


def secagg_config(config: config_lib.AlgorithmConfig) -> secure_aggregator.SecAggConfig:
    """The secure aggregation settings of the --secagg_* flags."""
    return secure_aggregator.SecAggConfig(
        clip=config.secagg_clip,
        precision_bits=config.secagg_precision,
        weight_bound=config.secagg_weight_bound,
        bits=config.secagg_bits or None,
        graph=config.secagg_graph,
        degree=config.secagg_degree,
        threshold=config.secagg_threshold,
        dropout=config.secagg_dropout,
    )


def privacy_kwargs(config: config_lib.AlgorithmConfig) -> dict:
    """build_algorithm's DP pieces from --dp_sgd_* (local training) and --local_dp_*."""
    out = {}
    if config.dp_sgd_clip > 0:
        out["gradient"] = dp_sgd.dp_sgd_gradient(
            clip=config.dp_sgd_clip, noise_multiplier=config.dp_sgd_noise_multiplier
        )
    if config.local_dp_clip > 0:
        out["client_transform"] = local_dp.local_dp_transform(
            config.local_dp_clip, config.local_dp_noise_multiplier
        )
    return out


def personal_config(config: config_lib.AlgorithmConfig) -> personal_registry.PersonalConfig:
    """The personalised algorithms' settings from the flags (-1 / 0: their defaults)."""
    return personal_registry.PersonalConfig(
        fine_tune_steps=config.fine_tune_steps,
        fedrep_head_steps=None if config.fedrep_head_steps < 0 else config.fedrep_head_steps,
        ditto_lambda=config.ditto_lambda,
        ditto_steps=config.ditto_steps or None,
        tap=tap.TAPConfig(
            margin=config.tap_margin,
            small_margin=config.tap_small_margin,
            small_margin_tasks=tuple(config.tap_small_margin_tasks),
            replacement=not config.tap_no_replacement,
            distill=not config.tap_no_distill,
            distill_weight=config.tap_distill_weight,
            distill_boost=config.tap_distill_boost,
            boost_tasks=tuple(config.tap_boost_tasks),
            temperature=config.tap_temperature,
        ),
    )


def local_config(config: config_lib.AlgorithmConfig) -> local_training.LocalTrainingConfig:
    """Local steps and batch size (0: each client's whole data) from the flags."""
    return local_training.LocalTrainingConfig(
        local_steps=config.local_steps, batch_size=config.batch_size or None
    )


def table_groups(config: config_lib.TrainConfig, table: tabular.Table | None) -> dict:
    """Group labels of a table federation, for per-group test metrics.

    Args:
      config: the run's config (--dataset, --csv_path, --group_by).
      table: the table federation the run trains on (from `load_data`), or None.

    Returns:
      {'group': the table's group column per school (e.g. hsb82's sector), if any;
       column: per test row [num_clients, n_test] for each --group_by column};
      {} for data sets that are not tables.
    """
    name, group_by = config.data.dataset, config.output.group_by
    if table is None:
        if group_by:
            raise SettingsError(f"--group_by needs a table; --dataset={name} is not one.")
        return {}
    groups = {"group": table.federation.groups} if table.federation.groups else {}
    if not group_by:
        return groups
    frame = _read_table(config.data) if name == "csv" else multilevel.load_frame(name)
    size = table.federation.test["mask"].shape[1]
    for column in group_by:
        if column not in frame.columns:
            raise SettingsError(f"--group_by={column} is not a column of {list(frame.columns)}.")
        groups[column] = equity.groups_from_rows(
            frame[column].to_numpy(), table.federation.test_rows, size
        )
    return groups


def simulation_config(config: config_lib.TrainConfig, num_clients: int) -> run_lib.SimulationConfig:
    """The simulation config; checks the cohort against the federation.

    --cohort_size 0 (the default) samples min(8, clients) institutions per round.
    """
    run, output = config.run, config.output
    cohort_size = run.cohort_size or min(DEFAULT_COHORT, num_clients)
    if cohort_size < 1:
        raise SettingsError(f"--cohort_size must be >= 1, got {cohort_size}.")
    if cohort_size > num_clients:
        raise SettingsError(
            f"--cohort_size={cohort_size} exceeds the {num_clients} clients of the federation."
        )
    return run_lib.SimulationConfig(
        rounds=run.rounds,
        cohort_size=cohort_size,
        chunk_size=run.chunk_size or None,
        num_devices=run.num_devices or None,
        seed=run.seed,
        workdir=output.workdir,
        checkpoint_every=output.checkpoint_every,
        eval_every=output.eval_every,
        tensorboard=output.tensorboard,
        resume=output.resume,
        guard_max_norm_ratio=config.algorithm.guard_max_norm_ratio,
    )


def train(config: config_lib.TrainConfig) -> run_lib.SimulationResult:
    """Builds everything from `config` and runs it.

    Writes <workdir>/config.json (`config.to_json()`); a rerun with the same workdir
    resumes from the last checkpoint if its config differs at most in the
    `config_lib.RESUMABLE` fields.

    Raises:
      SettingsError: before any training, for inconsistent settings.
    """
    say = logging_lib.log
    checks.preflight(config)  # Before any data is loaded.
    federation, table = load_data(config)
    check_federation(federation)
    plan = attack_plan(config)
    try:
        federation = attack_plan_lib.poison(plan, federation)
    except ValueError as e:
        raise SettingsError(f"--attack={plan.attack}: {e}") from None
    if table is None:  # A table's loader has printed its summary, with groups and drops.
        say(federation.summary())
    model = build_model(config.model, federation.spec)
    simulation = simulation_config(config, federation.num_clients)
    dp_plan = central_privacy.plan(config, simulation, federation.num_clients)
    simulation = central_privacy.with_rounds(simulation, dp_plan)
    aggregator = None if dp_plan is None else central.dp_aggregator(dp_plan.dp)
    algorithm = attack_plan_lib.arm(
        plan, build_algorithm(config, model, federation, aggregator), federation.num_clients
    )
    say("Module policy:\n" + algorithm.policy.describe())
    groups = table_groups(config, table) if config.output.baselines else {}
    # A secure aggregation round that aborted raises here, naming the round.
    hooks = [secure_aggregator.abort_hook] if config.algorithm.aggregator == "secagg" else []
    # Holds the workdir; config.json is written only once its checkpoint may be continued.
    result = checks.run_guarded(
        config,
        simulation,
        algorithm,
        model,
        federation,
        hooks=hooks,
        extra_metrics=central_privacy.round_metrics(dp_plan),
    )
    if plan.attack == "backdoor":
        params = result.server_state.params
        rate = attack_plan_lib.backdoor_success_rate(plan, model, params, federation)
        say(f"Backdoor attack success rate on triggered test inputs: {rate:.3f}")
    reports = _report(config, simulation, model, algorithm, federation, result, groups)
    leader = jax.process_index() == 0  # Several processes (experiments.launch): one writes.
    final = _reports_json(reports, federation.client_names)
    if dp_plan is not None:
        final["privacy"] = central_privacy.summary(dp_plan, simulation.rounds)
        say(central_privacy.summary_line(final["privacy"]))
    if simulation.workdir and leader:
        with open(os.path.join(simulation.workdir, "final_metrics.json"), "w") as f:
            json.dump(final, f, indent=2)
        written = ["config.json", "metrics.jsonl", "final_metrics.json", "checkpoints/"]
        written += ["tb/"] if simulation.tensorboard else []
        say(f"\nOutputs in {os.path.abspath(simulation.workdir)}: {', '.join(written)}.")
    return result


def load(workdir: str):
    """(config, federation, model, algorithm, `simulation.loop.Loaded`) of a binary's workdir.

    Rebuilds the run from its config.json (the data included, as the run read it)
    and reads back its newest intact checkpoint, for inference:

    >>> # config, federation, model, algorithm, loaded = train_lib.load('/tmp/run1')
    >>> # predictions = evaluation.predict(model, loaded.server_state.params, federation.test,
    >>> #     policy=algorithm.policy, client_states=loaded.client_states)
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise SettingsError(f"{workdir} has no config.json: is it a workdir of experiments.train?")
    with open(path) as f:
        config = config_lib.from_config_dict(json.load(f))
    federation = build_federation(config)
    model = build_model(config.model, federation.spec)
    algorithm = build_algorithm(config, model, federation)
    return config, federation, model, algorithm, run_lib.load(workdir, algorithm, model, federation)


def _report(
    config: config_lib.TrainConfig, simulation, model, algorithm, federation, result, groups
) -> dict:
    """Prints the test metrics of every view (and the baselines'); returns their reports."""
    say = logging_lib.log
    reports = {"global": result.global_report, "personal": result.personal_report}
    if result.personal_report is result.global_report:  # No local leaves, no adapt.
        del reports["personal"]
        say("\nTest metrics of the global model (no --local modules, so each institution's")
        say("view is the global model):")
    else:
        say("\nTest metrics (global model, and each institution's personalised view):")
    untrained = evaluation.report.untrained_local_modules(algorithm.policy)
    if untrained:
        # The server's copies of local leaves keep their initial values: say so in the rows.
        say(
            f"({evaluation.report.global_view_name(algorithm.policy)}: the server's model with "
            f"the initial values of the local modules {', '.join(untrained)}, which only "
            "clients train; each institution uses its personal view.)"
        )
    if config.algorithm.algorithm == "hierarchical":
        # What each institution uses: its group's model (the global one is the cloud's).
        local = result.client_states if "personal" in reports else None
        reports["group"] = hierarchical.evaluate_groups(
            algorithm, model, result.server_state, federation.test, federation.group_ids(), local
        )
        say("(group: each institution's view is its group's model, and its local modules.)")
    # Display names only: final_metrics.json keeps the keys 'global' and 'personal'.
    shown = {
        (evaluation.report.global_view_name(algorithm.policy) if k == "global" else k): v
        for k, v in reports.items()
    }
    say(evaluation.format_table(model, federation.client_names, shown))
    if config.data.dataset == "csv" or config.data.dataset in multilevel.DATASETS:
        reports["mean/majority"] = trivial.report(model, federation)
        # With untrained local heads the model in use is each institution's personal view.
        view = "personal" if untrained else "global"
        say(floor_line(model, reports[view], reports["mean/majority"], view=view))
    if config.data.dataset in config_lib.BUILDER_DATASETS:
        # A dataset's own metric (e.g. ASAP's per-set kappa) where it has one.
        report = getattr(builder_module(config.data.dataset), "test_report", None)
        if report is not None:
            predictions = evaluation.predict(model, result.server_state.params, federation.test)
            say(report(federation, predictions))
    if config.output.baselines:
        say("\nBaselines with the same example-steps, on the same test sets:")
        algo = config.algorithm
        comparison = baselines.compare(
            model,
            federation,
            result,
            policy=algorithm.policy,
            client_optimizer=registry.client_optimizer(algo.client_optimizer, algo.client_lr),
            local=local_config(algo),
            rounds=simulation.rounds,
            cohort_size=simulation.cohort_size,
            seed=simulation.seed,
            groups=groups,
        )
        say(comparison.text)
        reports.update({k: comparison.reports[k] for k in ("centralised", "local-only")})
    return reports


def floor_line(model, report, floor, view: str = "global") -> str:
    """The model's pooled primary metrics beside the mean / majority predictor's.

    `view`: which model `report` scores ('global', or 'personal' when the global
    model's local modules are untrained).
    """
    parts, worse = [], []
    for task in model.spec.tasks:
        metric = metrics_lib.PRIMARY[task.kind]
        got = report.pooled[task.name].get(metric, float("nan"))
        base = floor.pooled[task.name].get(metric, float("nan"))
        parts.append(f"{task.name}:{metric} {got:.4f} (mean/majority {base:.4f})")
        if got < base:
            worse.append(task.name)
    name = "Global model" if view == "global" else "Personalised views"
    line = f"{name} vs predicting the train mean / majority class: " + ", ".join(parts)
    if worse:
        line += (
            f"\nWarning: worse than the mean / majority predictor on {', '.join(worse)}: try "
            "more --rounds, a smaller model (--model=linear) or another --client_lr."
        )
    return line


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


def attack_plan(config: config_lib.TrainConfig) -> attack_plan_lib.AttackPlan:
    """The run's simulated attack from --attack and --attack_fraction (seeded by --seed)."""
    run = config.run
    return attack_plan_lib.AttackPlan(
        attack=run.attack, fraction=run.attack_fraction, seed=run.seed
    )
