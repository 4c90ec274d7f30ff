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
r"""Federated training of the modular M3T model: the main experiment binary.

  python -m experiments.train                      # synthetic education federation
  python -m experiments.train --algorithm=fedadam --server_lr=0.01 \
      --frozen=encoders/** --local=heads/** --rounds=50 --workdir=/tmp/run1

Prints progress per round, a final table of global and per-institution test
metrics, writes <workdir>/config.json and metrics.jsonl, checkpoints every
--checkpoint_every rounds, and resumes when rerun with the same --workdir.
`python -m experiments.train --helpfull` lists every flag.
"""

import sys

# On CPU, `import fedjax_m3t` splits the machine into host devices before JAX starts
# (fedjax_m3t/simulation/devices.py: a fixed count, the fastest measured; a user's
# own XLA_FLAGS win), and every round is sharded over them. GPUs are unaffected.
from absl import app, flags, logging

from experiments import train_lib
from fedjax_m3t.algorithms import registry
from fedjax_m3t.data import text as text_lib

FLAGS = flags.FLAGS

# Data.
flags.DEFINE_string(
    "dataset",
    "synthetic",
    f"One of {', '.join(train_lib.DATASETS)}. The embedded synthetic federation, your own "
    "table (csv), a downloaded dataset (with --data_dir; several joined by '+' make "
    "multi-modal institutions, e.g. assistments2009+asap_aes), or a multilevel school "
    "table (needs pip install -e '.[real]').",
)
flags.DEFINE_integer("num_clients", 16, "Synthetic: number of institutions.")
flags.DEFINE_integer("mean_examples", 256, "Synthetic: mean examples per institution.")
flags.DEFINE_float("quantity_skew", 0.5, "Synthetic: lognormal sigma of institution sizes.")
flags.DEFINE_float("label_skew_alpha", None, "Synthetic: Dirichlet alpha of outcome shares.")
flags.DEFINE_float("modality_missing_prob", 0.25, "Synthetic: P(institution lacks a modality).")
flags.DEFINE_float("task_missing_prob", 0.2, "Synthetic: P(institution lacks a task).")
flags.DEFINE_list("modalities", [], "Use only these modalities (e.g. 'interaction'). Empty: all.")
# Real data: the multilevel school tables (pip install -e ".[real]") or your own table.
flags.DEFINE_float("test_fraction", 0.25, "Real data: share of each school's rows held out.")
flags.DEFINE_bool(
    "standardize_targets", True, "Real data: standardise regression labels (train statistics)."
)
flags.DEFINE_string("csv_path", None, "--dataset=csv: a CSV or Parquet file, one row per student.")
flags.DEFINE_string(
    "client_column", None, "--dataset=csv: the column naming each student's school."
)
flags.DEFINE_string("group_column", None, "--dataset=csv: an optional level above the school.")
flags.DEFINE_list("feature_columns", [], "--dataset=csv: feature columns (text ones one-hot).")
flags.DEFINE_list(
    "target_columns", [], "--dataset=csv: targets as column:regression or column:classification."
)
flags.DEFINE_string(
    "student_column",
    None,
    "--dataset=csv: optional student id of longitudinal records (with --time_column): each "
    "row also gets the student's earlier records at its school as an interaction sequence.",
)
flags.DEFINE_string(
    "time_column",
    None,
    "--dataset=csv: optional time of each record (with --student_column); numbers sort "
    "numerically, text sorts as text.",
)
flags.DEFINE_string(
    "data_dir", None, "Downloaded datasets: TFDS data_dir (built there on first use)."
)
flags.DEFINE_enum(
    "partition",
    "natural",
    ["natural", "dirichlet"],
    "Downloaded datasets: clients are the dataset's institutions (natural), or "
    "--num_clients clients with Dirichlet(--dirichlet_alpha) label skew.",
)
flags.DEFINE_float("dirichlet_alpha", None, "Dirichlet concentration (unset: IID).")
flags.DEFINE_string(
    "manual_dir",
    None,
    "Downloaded datasets: folder holding the downloaded files (default "
    "<data_dir>/downloads/manual; README 'Data' lists each dataset's files).",
)
flags.DEFINE_string(
    "institution",
    None,
    "Downloaded datasets with a choice of institution field (oulad: region; scienceqa: "
    "subject, grade). Unset: the dataset's natural one.",
)
flags.DEFINE_list(
    "dataset_options",
    [],
    "Downloaded datasets: their own loader options as key=value (e.g. oulad: weeks=8 for "
    "an early-warning cut; ednet_kt1: max_users=10000; scienceqa: include_lecture=True).",
)
flags.DEFINE_bool(
    "strict", False, "Downloaded datasets: stop at the first malformed row instead of skipping it."
)
flags.DEFINE_enum(
    "text_encoding",
    "auto",
    ["auto", *text_lib.ENCODINGS],
    "Text datasets: minilm (frozen MiniLM sentence embeddings, cached in "
    "<data_dir>/text_cache), hash (word hashing, no dependency), wordpiece (MiniLM's "
    "tokenizer, for --text_encoder=minilm); auto: minilm if installed, else hash.",
)
flags.DEFINE_integer("text_length", 0, "Text datasets: tokens per text (0: the dataset's own).")
# Model.
flags.DEFINE_enum("model", "m3t", train_lib.MODELS, "The M3T model, or a linear model.")
flags.DEFINE_integer("width", 32, "Token width of encoders and backbone.")
flags.DEFINE_integer("depth", 2, "Transformer layers in the backbone.")
flags.DEFINE_integer("num_heads", 4, "Attention heads.")
flags.DEFINE_integer("lora_rank", 4, "LoRA rank on the backbone's attention (0: no LoRA).")
flags.DEFINE_integer("num_prompts", 0, "Learned prompt tokens (adapters/prompts).")
flags.DEFINE_enum(
    "text_encoder",
    "learned",
    ["learned", "minilm"],
    "learned: a table over the text ids (or a projection of cached embeddings); minilm: the "
    "pretrained all-MiniLM-L6-v2, frozen, with LoRA (needs --text_encoding=wordpiece).",
)
flags.DEFINE_integer("text_lora_rank", 4, "--text_encoder=minilm: LoRA rank (0: none).")
# Algorithm.
flags.DEFINE_enum("algorithm", "fedavg", registry.ALGORITHMS, "Federated algorithm.")
flags.DEFINE_enum("client_optimizer", "adam", registry.CLIENT_OPTIMIZERS, "Local optimizer.")
flags.DEFINE_float("client_lr", 3e-3, "Local learning rate.")
flags.DEFINE_float("server_lr", 1.0, "Server learning rate.")
flags.DEFINE_float("server_momentum", 0.9, "fedavgm momentum.")
flags.DEFINE_float("prox_mu", 0.01, "fedprox proximal weight.")
flags.DEFINE_integer("local_steps", 5, "Local optimizer steps per round.")
flags.DEFINE_integer("batch_size", 32, "Local batch size (0: each client's whole data).")
flags.DEFINE_list("federated", [], "Module patterns trained and averaged (default: all else).")
flags.DEFINE_list("local", [], "Module patterns trained but kept on each client.")
flags.DEFINE_list("frozen", [], "Module patterns neither trained nor sent.")
# Simulation.
flags.DEFINE_integer("rounds", 40, "Federated rounds.")
flags.DEFINE_bool(
    "baselines", False, "Also train centralised and local-only baselines with the same budget."
)
flags.DEFINE_list("group_by", [], "Table columns to report test metrics by (e.g. sex).")
flags.DEFINE_integer("cohort_size", 0, "Clients per round (0: 8, or all if fewer).")
flags.DEFINE_integer(
    "chunk_size", 0, "Clients vmapped at once per device (0: auto; see default_chunk_size)."
)
flags.DEFINE_integer("num_devices", 0, "Devices to shard the cohort over (0: all).")
flags.DEFINE_integer("seed", 0, "Seed of data, init and rounds.")
flags.DEFINE_string("workdir", None, "Output dir: config.json, metrics.jsonl, checkpoints.")
flags.DEFINE_integer("checkpoint_every", 10, "Checkpoint every this many rounds.")
flags.DEFINE_integer("eval_every", 10, "Evaluate on the test split every this many rounds.")
flags.DEFINE_bool("tensorboard", False, "Also write TensorBoard events to <workdir>/tb.")
flags.DEFINE_enum("preset", None, list(train_lib.PRESETS), "Defaults for unset flags ('tiny': CI).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; flags look like --rounds=10.")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO.
    module = sys.modules[__name__]
    ours = FLAGS.get_key_flags_for_module(module)
    settings = {f.name: f.value for f in ours if f.name != "preset"}
    try:
        explicit = {f.name for f in ours if f.present}
        settings = train_lib.apply_preset(settings, FLAGS.preset, explicit)
        train_lib.train(settings)
    except train_lib.SettingsError as e:
        sys.exit(f"Error: {e}")


if __name__ == "__main__":
    app.run(main)
