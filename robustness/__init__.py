"""The evaluation package: engine, metrics, results and reading them back, scale-out.

The engine and its records are imported lazily (``geomrobust.robustness.evaluate`` loads
torch on first use), so importing the package stays fast.
"""

from geomrobust._lazy import lazy_exports

_LAZY = {
    "evaluate": "geomrobust.robustness._engine",
    "EvalOptions": "geomrobust.robustness._eval_options",
    "ForwardOptions": "geomrobust.robustness._forward",
    "keep_freed_memory": "geomrobust.robustness._fast_cpu",
    "Shard": "geomrobust.robustness._engine",
    "ShardResult": "geomrobust.robustness._engine",
    "plan_shards": "geomrobust.robustness._engine",
    "run_shard": "geomrobust.robustness._engine",
    "merge_shards": "geomrobust.robustness._engine",
    "work_rows": "geomrobust.robustness._engine",
    "EvalResult": "geomrobust.robustness._results",
    "PointResult": "geomrobust.robustness._results",
    "Summary": "geomrobust.robustness._results",
    "ModelRecord": "geomrobust.robustness._results",
    "DataRecord": "geomrobust.robustness._results",
    "TransformRecord": "geomrobust.robustness._results",
    "Predictions": "geomrobust.robustness._results",
    "summarise": "geomrobust.robustness._results",
    "load_result": "geomrobust.robustness._io",
    "load_pair_result": "geomrobust.robustness._io",
    "write_pair_result": "geomrobust.robustness._io",
    "write_json_atomic": "geomrobust.robustness._io",
    "EVAL_SCHEMA": "geomrobust.robustness._results",
    "PAIRS_SCHEMA": "geomrobust.robustness._pairs_eval",
    "write_result": "geomrobust.robustness._io",
    "predictions_path": "geomrobust.robustness._io",
    "compare_results": "geomrobust.robustness._compare",
    "Comparison": "geomrobust.robustness._compare",
    "PointComparison": "geomrobust.robustness._compare",
    "compare_seeds": "geomrobust.robustness._seeds",
    "seed_groups": "geomrobust.robustness._seeds",
    "SeedComparison": "geomrobust.robustness._seeds",
    "SeedDifference": "geomrobust.robustness._seeds",
    "COMPARE_SEEDS_SCHEMA": "geomrobust.robustness._seeds",
    "t_interval": "geomrobust.robustness._seeds",
    "evaluate_pairs": "geomrobust.robustness._pairs_eval",
    "PairResult": "geomrobust.robustness._pairs_eval",
    "attack": "geomrobust.robustness._attack",
    "AttackPlan": "geomrobust.robustness._attack",
    "AttackConfig": "geomrobust.robustness._attack_config",
    "AttackPreset": "geomrobust.robustness._attack_config",
    "attack_preset": "geomrobust.robustness._attack_config",
    "AttackResult": "geomrobust.robustness._attack_result",
    "ATTACK_SCHEMA": "geomrobust.robustness._attack_result",
    "write_attack_result": "geomrobust.robustness._attack_result",
    "load_attack_result": "geomrobust.robustness._attack_result",
    "flip_probability": "geomrobust.robustness._stability",
    "flip_rate": "geomrobust.robustness._stability",
    "pair_consistency": "geomrobust.robustness._stability",
    "mean_abs_prob_change": "geomrobust.robustness._stability",
    "load_for_eval": "geomrobust.robustness._checkpoints",
    "load_for_folder": "geomrobust.robustness._checkpoints",
    "LoadedModel": "geomrobust.robustness._checkpoints",
    "resolve_checkpoint_path": "geomrobust.robustness._checkpoints",
    "EvalInputError": "geomrobust.robustness._eval_errors",
    "ResumeError": "geomrobust.robustness._eval_errors",
    "IncompatibleResultsError": "geomrobust.robustness._eval_errors",
    "wilson_interval": "geomrobust.robustness._metrics",
    "confusion_matrix": "geomrobust.robustness._metrics",
    "mcnemar_exact": "geomrobust.robustness._metrics",
    "paired_bootstrap_ci": "geomrobust.robustness._metrics",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
