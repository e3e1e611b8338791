"""Accuracy check of a model cost option: `benchmarks/propagation.py` for several seeds, default vs option.

Usage:
    python benchmarks/propagation_options.py --set stda_head=shuffle --seeds 0 1 2 -- \\
        --threads 1 --no-progress --variants f --intervals 7 --no-flow --pretrain-steps 600 --steps 300

Everything after `--` goes to benchmarks/propagation.py unchanged (run in this process through its `main`). For
each seed the default model and the model with the `--set` fields are trained with the same settings and data;
the option run starts from the default run's pretrained single-frame checkpoint (the cost options only change the
temporal modules, so that checkpoint is the same). The only change to propagation.py's behaviour is that its
experiment configs get the extra `model:` fields. Prints Mean mAP (T = 7, full STDPose) per seed, mean and
standard deviation of both, and whether the option's mean lies within one standard deviation of the default's;
writes `<out>/propagation_options.json` and `.md`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def load_bench() -> Any:
    """benchmarks/propagation.py as a module (it is a script, not a package member)."""
    spec = importlib.util.spec_from_file_location("bench_propagation", HERE / "propagation.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def parse_fields(items: list[str]) -> dict[str, Any]:
    """["stda_head=shuffle", "tff_depth=1"] -> {"stda_head": "shuffle", "tff_depth": 1} (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def run_one(bench: Any, argv: list[str], fields: dict[str, Any]) -> dict:
    """One propagation.py run whose experiment configs carry `fields` in their model section; its results dict."""
    original = bench.experiment_config

    def with_fields(settings: dict, variant: str, data_dir: Path) -> dict:
        cfg = original(settings, variant, data_dir)
        if not fields:
            return cfg
        from stdpose.engine.config import validate_config

        cfg["model"].update(fields)
        return validate_config(cfg, source="benchmarks/propagation_options.py")

    bench.experiment_config = with_fields
    try:
        if bench.main(argv) != 0:
            raise SystemExit(f"benchmarks/propagation.py {' '.join(argv)} failed")
    finally:
        bench.experiment_config = original
    out = Path(argv[argv.index("--out") + 1])
    res = json.loads((out / "propagation.json").read_text())
    res["option"] = fields  # which model fields this run added (read back by --collect)
    from stdpose.atomic import atomic_write_json

    atomic_write_json(out / "propagation.json", res, indent=1)
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    bench_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, bench_args = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", nargs="+", required=True, metavar="KEY=VALUE", help="model config fields of the option")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--work", type=Path, default=Path("outputs/propagation_options"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--collect", action="store_true", help="run nothing: summarise the results that earlier runs "
                   "(e.g. one process per seed) left in --work")
    args = p.parse_args(argv)
    for flag in ("--seed", "--work", "--out"):
        if flag in bench_args:
            raise SystemExit(f"{flag} is set by this wrapper; do not pass it to propagation.py")
    fields = parse_fields(args.set)
    label = ",".join(f"{k}={v}" for k, v in fields.items())
    bench = load_bench()
    start = time.perf_counter()
    scores: dict[str, list[float]] = {"default": [], label: []}
    for seed in args.seeds:
        for name, extra in (("default", {}), (label, fields)):
            work = args.work / f"seed{seed}" / ("default" if not extra else "option")
            work.mkdir(parents=True, exist_ok=True)
            pretrain = args.work / f"seed{seed}" / "default" / "propagation_pretrain.ckpt"
            if extra and pretrain.is_file() and not (work / pretrain.name).is_file():
                shutil.copy2(pretrain, work / pretrain.name)  # same single-frame model for both
            run_argv = [*bench_args, "--seed", str(seed), "--work", str(work), "--out", str(work / "results")]
            if args.collect:
                saved = work / "results" / "propagation.json"
                if not saved.is_file():
                    raise SystemExit(f"--collect: {saved} is missing (that run has not finished)")
                res = json.loads(saved.read_text())
                if res["settings"]["seed"] != seed or res.get("option", extra) != extra:
                    raise SystemExit(f"--collect: {saved} was written with other settings")
                bench_args = res["command"].split(" --seed ")[0].split() if not bench_args else bench_args
            else:
                res = run_one(bench, run_argv, extra)
            scores[name].append(float(res["table4"]["f"]["Mean"]))
            print(f"seed {seed} {name}: Mean mAP {scores[name][-1]:.2f}", flush=True)

    def stats(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    d_mean, d_std = stats(scores["default"])
    o_mean, o_std = stats(scores[label])
    within = abs(o_mean - d_mean) <= d_std
    verdict = "within" if within else "NOT within"
    print(f"\ndefault: {d_mean:.2f} +- {d_std:.2f}   {label}: {o_mean:.2f} +- {o_std:.2f}  "
          f"(difference {o_mean - d_mean:+.2f}: {verdict} one standard deviation of the default)")
    result = {
        "command": "python benchmarks/propagation_options.py " + " ".join(sys.argv[1:] if argv is None else argv)
                   + (" -- " + " ".join(bench_args) if bench_args else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + ", CPU shared by several jobs",
        "bench_args": bench_args, "seeds": args.seeds, "option": fields, "mean_map": scores,
        "default_mean": d_mean, "default_std": d_std, "option_mean": o_mean, "option_std": o_std,
        "within_one_std": within, "wall_seconds": time.perf_counter() - start,
    }
    from stdpose.atomic import atomic_write_json, atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "propagation_options.json", result, indent=1)
    rows = "\n".join(f"| {s} | {a:.2f} | {b:.2f} |" for s, a, b in zip(args.seeds, scores["default"], scores[label]))
    atomic_write_text(args.out / "propagation_options.md", (
        f"# Accuracy check of the cost option `{label}`\n\n"
        f"Written by `{result['command']}` on {result['date']} ({result['machine']}; threads as in the bench "
        f"arguments); wall time {result['wall_seconds'] / 60:.1f} min.\n\n"
        "Mean mAP of the full STDPose (variant f) at T = 7 on the synthetic bench val videos, per training seed:\n\n"
        f"| seed | default | {label} |\n| --- | --- | --- |\n{rows}\n"
        f"| mean +- std | {d_mean:.2f} +- {d_std:.2f} | {o_mean:.2f} +- {o_std:.2f} |\n\n"
        f"Difference {o_mean - d_mean:+.2f}: {verdict} one standard deviation of the default.\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
