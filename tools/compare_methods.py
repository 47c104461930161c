#!/usr/bin/env python
"""Does distillation pay on your data? Train several methods with paired seeds from one distillation config.

    python tools/compare_methods.py --config-file configs/own/apd_pspnet_r18.py \\
        --methods student,kd,cwd,apd_kd --seeds 1-5 [key=value ...]
    python tools/compare_methods.py --methods student,kd,apd_kd --seeds 1,2,3 \\
        --config-file configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py

A method is a name of the registry ``apd.methods`` (``student`` = the config's student trained alone): the
method's distillation terms and loss weights replace the config's, everything else (student, teacher, data,
schedule, optimiser) stays. Every run is a plain ``train_net.py`` run of a generated config
(``<output>/configs/<method>.py``: the config with ``apd.methods.apply_method``) with ``train.seed=<seed>``
and the ``key=value`` overrides given here (``model.student.*`` keys reach the student of the ``student``
runs; teacher and term keys are left out of them). The seed fixes the student's initialisation and the data
stream, so the runs of one seed are **paired**.

One method with something changed is a **variant**: ``NAME=METHOD`` in ``--methods`` runs METHOD under its own
name, and an override ``NAME:key=value`` applies to NAME's runs only (after the overrides for every run), e.g.
``--methods kd,apd_kd,apd_kd_w1=apd_kd apd_kd_w1:model.loss_weights.loss_apd=1.0`` or
``--methods student,scratch=student scratch:train.init_checkpoint=``. Every override is checked against the
method's config before anything trains.

The score is the final checkpoint's evaluation: ``sem_seg/mIoU`` for segmentation, ``bbox/AP`` and (Mask
R-CNN) ``segm/AP`` for R-CNN configs.

Interrupted? Run the same command again: finished runs are reused, a run cut short continues from its last
checkpoint (``train_net.py --resume``, which repeats an uninterrupted run exactly); ``--retrain`` redoes them.
The console shows each run's progress bar (one run at a time) or a line per finished run (``--jobs`` > 1),
with the ETA of the whole comparison. After every run the report is rewritten: ``<output>/table.md`` and
``<output>/results.json``: per method and metric the mean ± sample std over seeds, the per-seed values and,
against each reference method (``--references``, default the student and KD), the mean paired difference
with its 95% t-interval (**bold** when it excludes 0) and the wins (seeds where the method is better).

As a library (``benchmarks/accuracy.py`` is one): :func:`load_comparison` → :func:`plan_runs` →
:func:`run_plan`, then :func:`write_report` or a report of one's own from the run folders
``<output>/<name>/seed<seed>`` and ``<output>/runs.json``.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import run_demo  # noqa: E402  (tools/run_demo.py: progress bars and metrics.json readers)

STATE_FILE = "runs.json"
# metric key in metrics.json -> its column header, per task
METRICS = {"sem_seg": [("sem_seg/mIoU", "mIoU")], "rcnn": [("bbox/AP", "box AP"), ("segm/AP", "mask AP")]}
# keys a plain student has no use for: left out of the "student" runs' overrides
_DISTILLER_ONLY = ("model.teacher", "model.teacher_weights", "model.distill_heads", "model.loss_weights",
                   "model.warmup_iters", "model.save_teacher", "model.class_map_from", "adapter_optimizer")


# ------------------------------------------------------------------------------------------ statistics
def parse_seeds(text: str):
    """``"1-5"`` → [1, 2, 3, 4, 5]; ``"1,3,7"`` → [1, 3, 7]; ranges and lists combine (``"1-3,9"``).
    Raises ValueError on anything else, an empty set or a repeated seed."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep and lo.strip().isdigit() and hi.strip().isdigit():
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, e.g. 1-5 or 1,2,3; got {text!r}")
    return seeds


def mean_std(values):
    """Mean and sample standard deviation (nan where undefined)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def t_quantile(df: int, q: float = 0.975) -> float:
    """Student-t quantile (scipy)."""
    from scipy import stats

    return float(stats.t.ppf(q, df))


def paired(diffs):
    """Mean paired difference, its 95% t-interval mean ± t(0.975, n−1)·s/√n as (lo, hi), the sample std s,
    the wins (differences > 0) and n."""
    n = len(diffs)
    mean, std = mean_std(diffs)
    if n > 1:
        half = t_quantile(n - 1) * std / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = float("nan")
    return {"mean": mean, "lo": lo, "hi": hi, "std": std, "wins": sum(d > 0 for d in diffs), "n": n}


def format_diff(d) -> str:
    """One paired comparison of :func:`paired` as ``+m [lo, hi] (wins/n)``, bold where the interval excludes 0."""
    if not d:
        return "—"
    if d["n"] < 2:
        return f"{d['mean']:+.2f} ({d['wins']}/{d['n']})"
    mark = "**" if d["lo"] > 0 or d["hi"] < 0 else ""  # the interval excludes 0
    return f"{mark}{d['mean']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] ({d['wins']}/{d['n']}){mark}"


def summarize(scores, methods, seeds, metrics, references):
    """Per method and metric: per-seed values, mean ± std and the paired differences to each reference over
    the seeds both have. ``scores``: method → seed → metric key → value."""
    rows = []
    for method in methods:
        row = {"method": method, "metrics": {}}
        for key, _ in metrics:
            values = {s: scores[method][s][key] for s in seeds if key in scores.get(method, {}).get(s, {})}
            entry = {"per_seed": values}
            entry["mean"], entry["std"] = mean_std(list(values.values()))
            for ref in references:
                if ref == method or ref not in scores:
                    continue
                shared = [s for s in values if key in scores[ref].get(s, {})]
                if shared:
                    entry[f"vs_{ref}"] = paired([values[s] - scores[ref][s][key] for s in shared])
            row["metrics"][key] = entry
        rows.append(row)
    return rows


def format_table(rows, labels, seeds, metrics, references, teacher=None, note=""):
    """The markdown table of :func:`summarize`'s rows: one block of columns per metric."""
    head = ["method"]
    for _, name in metrics:
        head += [f"{name} mean ± std"] + [f"seed {s}" for s in seeds]
        head += [f"{name} Δ vs {r} [95% CI] (wins)" for r in references]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if teacher:
        cells = ["Teacher (logged before step 0)"]
        for key, _ in metrics:
            value = teacher.get(key)
            cells += [f"{value:.2f}" if value is not None else ""] + [""] * (len(seeds) + len(references))
        lines.append("| " + " | ".join(cells) + " |")
    for row in rows:
        cells = [labels.get(row["method"], row["method"])]
        for key, _ in metrics:
            m = row["metrics"][key]
            mean_cell = "—" if m["mean"] != m["mean"] else (
                f"{m['mean']:.2f} ± {m['std']:.2f}" if m["std"] == m["std"] else f"{m['mean']:.2f}")
            cells += [mean_cell] + [f"{m['per_seed'][s]:.2f}" if s in m["per_seed"] else "" for s in seeds]
            cells += ["—" if r == row["method"] else format_diff(m.get(f"vs_{r}")) for r in references]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Final checkpoint of each run; std = sample standard deviation over seeds (an empty cell: that run "
              "has not finished). Δ = mean of the per-seed paired difference (same seed: same student initialisation "
              "and data stream) with its 95% t-interval; **bold** where the interval excludes 0; wins = seeds where "
              "the method is better." + (" " + note if note else "")]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ runs
def method_config(config_file: str, method: str, folder: str) -> str:
    """Write ``<folder>/<method>.py``, the config ``config_file`` turned into ``method`` (apd.methods), and
    return its path. The file is rewritten only when its text changes."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{method}.py")
    text = (f'"""{os.path.relpath(config_file, ROOT)} with method {method!r} (apd.methods.apply_method); '
            'written by tools/compare_methods.py."""\n'
            "from detectron2.config import LazyConfig\n\n"
            "from apd.methods import apply_method\n\n"
            f"_cfg = apply_method(LazyConfig.load({os.path.abspath(config_file)!r}), {method!r})\n"
            "for _key in list(_cfg.keys()):\n"
            "    globals()[_key] = _cfg[_key]\n")
    old = open(path).read() if os.path.exists(path) else None
    if old != text:
        with open(path, "w") as f:
            f.write(text)
    return path


def method_overrides(method: str, opts):
    """The user's overrides as method ``method``'s config spells them: for ``student`` (the student alone)
    ``model.student.X`` → ``model.X`` and teacher/term keys dropped; others unchanged."""
    if method != "student":
        return list(opts)
    out = []
    for opt in opts:
        key = opt.split("=", 1)[0].strip()
        if any(key == k or key.startswith(k + ".") for k in _DISTILLER_ONLY):
            continue
        out.append("model." + opt[len("model.student."):] if key.startswith("model.student.") else opt)
    return out


@dataclass
class MethodSpec:
    """One row of a comparison: ``name`` (its runs' folder and table row), the registered ``method`` it
    trains (``apd.methods``; ``name == method`` unless a variant), ``overrides`` (``key=value`` for its runs
    only, spelled as the distillation config spells them) and its table ``label``."""

    name: str
    method: str
    overrides: List[str] = field(default_factory=list)
    label: str = ""


def parse_methods(text: str, opts, task: str):
    """``--methods`` and the ``key=value`` list as specs and the overrides for every run.

    ``text``: comma list of ``NAME`` (a registered method of ``task``) or ``NAME=METHOD`` (a variant);
    ``opts``: ``key=value`` (every run) and ``NAME:key=value`` (NAME's runs). A variant's label is its
    method's with its overrides appended. Returns ``(specs, common_opts)``.

    Raises:
        ValueError: an unknown method, a repeated name, or an override for a name not in ``text``.
    """
    from apd.methods import get_method, method_names

    specs = {}
    for item in [m.strip() for m in text.split(",") if m.strip()]:
        name, _, method = (part.strip() for part in item.partition("="))
        method = method or name
        if method not in method_names(task):
            raise ValueError(f"unknown method {method!r} for a {task} config; registered: {method_names(task)}")
        if name in specs:
            raise ValueError(f"method name {name!r} appears twice in --methods")
        specs[name] = MethodSpec(name, method, [], get_method(method, task).label)
    if not specs:
        raise ValueError("--methods names no method")
    common = []
    for opt in opts:
        target, sep, rest = opt.split("=", 1)[0].partition(":")
        if not sep:
            common.append(opt)
            continue
        if target not in specs:
            raise ValueError(f"override {opt!r} names {target!r}, which is not in --methods {list(specs)}")
        specs[target].overrides.append(opt[len(target) + 1:])
    for spec in specs.values():
        if spec.overrides:
            spec.label += "; " + ", ".join(spec.overrides)
    return list(specs.values()), common


@dataclass
class Comparison:
    """What :func:`load_comparison` read: the config, its task, the specs, the overrides for every run, the
    metrics (key, column header) and the runs' ``train.max_iter``."""

    config_file: str
    task: str
    specs: List[MethodSpec]
    opts: List[str]
    metrics: list
    max_iter: int

    def run_opts(self, spec: MethodSpec) -> List[str]:
        """The overrides of ``spec``'s runs as its config spells them (:func:`method_overrides`)."""
        return method_overrides(spec.method, list(self.opts) + list(spec.overrides))


def load_comparison(config_file: str, methods, opts) -> Comparison:
    """Read a distillation config with the overrides for every run and check every method's overrides
    against the method's config (``apd.config.check_overrides``) before anything trains. ``methods``: the
    ``--methods`` text, or None for every registered method of the config's task.

    Raises:
        ValueError: not a distillation config, an unknown method, a bad override (its message names it).
        FileNotFoundError: no ``config_file``.
    """
    from detectron2.config import LazyConfig

    from apd.config import check_overrides, load_config
    from apd.methods import apply_method, config_task, method_names

    config_file = os.path.abspath(config_file)
    common = [o for o in opts if ":" not in o.split("=", 1)[0]]
    cfg = load_config(config_file, common)
    if "student" not in cfg.model:
        raise ValueError(f"{config_file} is not a distillation config (no model.student)")
    task = config_task(cfg)
    specs, common = parse_methods(methods or ",".join(method_names(task)), opts, task)
    comparison = Comparison(config_file, task, specs, common, [], int(cfg.train.max_iter))
    for spec in specs:
        if spec.overrides:
            try:
                check_overrides(apply_method(LazyConfig.load(config_file), spec.method), comparison.run_opts(spec))
            except (ValueError, KeyError) as e:
                raise ValueError(f"method {spec.name!r}: {e}") from None
    mask = task == "rcnn" and cfg.model.student.roi_heads.get("mask_head") is not None
    comparison.metrics = METRICS[task] if task == "sem_seg" or mask else METRICS[task][:1]
    return comparison


def plan_runs(comparison: Comparison, seeds, output: str, state: "State", retrain: bool = False,
              tag: str = "compare"):
    """The runs still to train, seed-major (complete seeds, i.e. pairs, accumulate first), as
    :func:`run_plan` takes them. A run is reused when ``state`` holds the same command (:func:`_run_key`) and
    its folder the final checkpoint and score; continued (``--resume``) when it was started with the same
    command and has a checkpoint; else trained anew. The first distillation run of the first seed also
    scores the teacher. Writes the method configs into ``<output>/configs/``."""
    from apd.methods import STUDENT

    plan = []
    first_distill = next((s.name for s in comparison.specs if s.method != STUDENT), None)
    for seed in seeds:
        for spec in comparison.specs:
            name, out = f"{spec.name}/seed{seed}", os.path.join(output, spec.name, f"seed{seed}")
            config = method_config(comparison.config_file, spec.method, os.path.join(output, "configs"))
            cmd = train_command(config, out, seed, spec.name == first_distill and seed == seeds[0],
                                comparison.run_opts(spec))
            same = _run_key(state.get(name).get("cmd", [])) == _run_key(cmd)
            if same and not retrain and final_scores(out, comparison.metrics, comparison.max_iter):
                print(f"[{tag}] {name}: finished, reused", flush=True)
                continue
            resume = same and not retrain and os.path.exists(os.path.join(out, "last_checkpoint"))
            if resume:
                cmd[cmd.index("--overwrite")] = "--resume"
            plan.append((name, out, cmd, resume))
    return plan


def train_command(config: str, out: str, seed: int, eval_teacher: bool, opts, flag: str = "--overwrite"):
    """The ``train_net.py`` command of one run; ``flag``: ``--overwrite`` (a new run) or ``--resume``."""
    return [sys.executable, "train_net.py", "--config-file", config, flag, f"train.output_dir={out}",
            f"train.seed={seed}", f"train.eval_teacher={eval_teacher}", *opts]


def _run_key(cmd):
    """What makes two commands the same run: all but the interpreter, the start flag and whether the teacher
    is scored."""
    return [c for c in cmd[1:] if c not in ("--resume", "--overwrite") and not c.startswith("train.eval_teacher=")]


def final_scores(out: str, metrics, max_iter: int):
    """{metric key: value} of the run's final evaluation (at its last iteration), or None when it has none."""
    entry = run_demo.final_metrics(out, metrics[0][0])
    if entry is None or entry.get("iteration") not in (max_iter - 1, max_iter):
        return None
    if not os.path.exists(os.path.join(out, "model_final.pth")):
        return None
    return {key: entry[key] for key, _ in metrics if key in entry}


class State:
    """``<output>/runs.json``: per run its command, status and wall time (written atomically)."""

    def __init__(self, output: str):
        self.path = os.path.join(output, STATE_FILE)
        self.lock = threading.Lock()
        self.runs = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.runs = json.load(f)

    def get(self, name):
        return self.runs.get(name, {})

    def set(self, name, **entry):
        with self.lock:
            self.runs[name] = {**self.runs.get(name, {}), **entry}
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.runs, f, indent=1)
            os.replace(tmp, self.path)


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run_plan(plan, *, jobs: int, env, max_iter: int, state: "State" = None, on_done=None, tag: str = "compare"):
    """Train the runs of ``plan`` (``(name, out, cmd, resume)`` tuples, ``cmd`` a train_net.py command into
    ``out``), ``jobs`` at a time. One job: each run's progress bar; several: a line per finished run. After
    each run: the elapsed time and the ETA of the plan (median run wall time × the rounds left), ``state``
    updated, ``on_done(name, out, cmd, wall_s)`` called (under a lock). Returns the failures as lines naming
    the run and its log."""
    start, walls, failures = time.time(), [], []
    lock = threading.Lock()

    def work(job):
        name, out, cmd, resume = job
        if state is not None:
            state.set(name, cmd=cmd, status="running", started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
        try:
            if jobs == 1:
                wall = run_demo.train_with_progress(cmd, out, env, max_iter, name, resume=resume)
            else:
                os.makedirs(os.path.dirname(os.path.normpath(out)), exist_ok=True)
                t0 = time.time()
                with open(run_demo.console_log(out), "w") as log:
                    code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
                run_demo.move_console_log(out)
                if code:
                    raise subprocess.CalledProcessError(code, cmd)
                wall = time.time() - t0
        except subprocess.CalledProcessError as e:
            if state is not None:
                state.set(name, status=f"failed (exit {e.returncode})")
            with lock:
                failures.append(f"{name}: exit {e.returncode}, see {os.path.join(out, 'stdout.log')}")
                print(f"[{tag}] {failures[-1]}", flush=True)
            return
        if state is not None:
            state.set(name, status="done", wall_s=wall)
        with lock:
            walls.append(wall)
            done = len(walls) + len(failures)
            eta = statistics.median(walls) * math.ceil((len(plan) - done) / jobs)
            print(f"[{tag}] {name} done in {_fmt_minutes(wall)}; {done}/{len(plan)} runs, elapsed "
                  f"{_fmt_minutes(time.time() - start)}, ETA {_fmt_minutes(eta)}", flush=True)
            if on_done is not None:
                on_done(name, out, cmd, wall)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(work, job) for job in plan]:
            future.result()
    return failures


def write_report(output, comparison: Comparison, seeds, references, argv, quiet=False):
    """Collect every finished run's scores and rewrite ``<output>/table.md`` and ``<output>/results.json``;
    returns the summary rows (:func:`summarize`)."""
    from apd.methods import STUDENT

    metrics, max_iter, names = comparison.metrics, comparison.max_iter, [s.name for s in comparison.specs]
    scores, teacher = {}, None
    for spec in comparison.specs:
        for seed in seeds:
            out = os.path.join(output, spec.name, f"seed{seed}")
            found = final_scores(out, metrics, max_iter)
            if found:
                scores.setdefault(spec.name, {})[seed] = found
            if teacher is None and spec.method != STUDENT:
                logged = run_demo.teacher_logged_score(out, metrics[0][0])
                if logged is not None:
                    teacher = {k: logged.get(f"teacher/{k}") for k, _ in metrics}
    used = [m for m, _ in metrics]
    present = [(k, n) for k, n in metrics if any(k in v for r in scores.values() for v in r.values())] or metrics[:1]
    rows = summarize(scores, names, seeds, present, references)
    config = os.path.relpath(comparison.config_file, ROOT)
    table = format_table(rows, {s.name: s.label for s in comparison.specs}, seeds, present, references, teacher,
                         note=f"Config {config}, {max_iter} iterations per run.")
    with open(os.path.join(output, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump({"argv": argv, "config": config, "methods": names, "seeds": seeds,
                   "variants": {s.name: {"method": s.method, "overrides": s.overrides} for s in comparison.specs
                                if s.name != s.method or s.overrides},
                   "references": references, "metrics": used, "max_iter": max_iter, "teacher": teacher,
                   "runs_finished": sum(len(v) for v in scores.values()), "runs_planned": len(names) * len(seeds),
                   "scores": {m: {str(s): v for s, v in r.items()} for m, r in scores.items()},
                   "summary": [{**r, "metrics": {k: {**e, "per_seed": {str(s): v for s, v in e["per_seed"].items()}}
                                                 for k, e in r["metrics"].items()}} for r in rows]}, f, indent=1)
    if not quiet:
        print("\n" + table, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="a distillation config (its student, teacher, data)")
    parser.add_argument("--methods", default=None, help="comma list of apd.methods names or variants NAME=METHOD "
                        "(default: every method of the config's task)")
    parser.add_argument("--seeds", default="1-5", help="train.seed of the runs: 1-5, or 1,2,3 (default 1-5)")
    parser.add_argument("--references", default=None,
                        help="methods every method is compared with (default: student and kd, those run)")
    parser.add_argument("--output", default=None, help="default: output/compare/<config name>")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="OMP threads per run (default: cores / jobs)")
    parser.add_argument("--retrain", action="store_true", help="redo finished runs")
    parser.add_argument("--report-only", action="store_true", help="only rewrite table.md and results.json")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help="key=value overrides for every run, NAME:key=value for method NAME's runs")
    args = parser.parse_args(argv)
    argv_record = sys.argv[1:] if argv is None else list(argv)

    from apd.methods import STUDENT

    try:
        seeds = parse_seeds(args.seeds)
        comparison = load_comparison(args.config_file, args.methods, args.opts)
    except (ValueError, KeyError, FileNotFoundError) as e:
        parser.error(str(e))
    names = [s.name for s in comparison.specs]
    references = ([r.strip() for r in args.references.split(",") if r.strip()] if args.references
                  else [r for r in (STUDENT, "kd") if r in names])
    if set(references) - set(names):
        parser.error(f"--references {sorted(set(references) - set(names))} are not in --methods {names}")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    output = os.path.abspath(args.output or os.path.join(
        ROOT, "output", "compare", os.path.splitext(os.path.basename(comparison.config_file))[0]))
    os.makedirs(output, exist_ok=True)
    report = dict(output=output, comparison=comparison, seeds=seeds, references=references, argv=argv_record)
    if args.report_only:
        return write_report(**report)

    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    state = State(output)
    plan = plan_runs(comparison, seeds, output, state, args.retrain)
    print(f"[compare] {len(plan)} of {len(names) * len(seeds)} runs to train ({len(names)} methods × "
          f"{len(seeds)} seeds, {comparison.max_iter} iterations, {args.jobs} at a time); report in {output}",
          flush=True)

    start = time.time()
    failures = run_plan(plan, jobs=args.jobs, env=env, max_iter=comparison.max_iter, state=state,
                        on_done=lambda *_: write_report(**report, quiet=True))
    rows = write_report(**report)
    print(f"\n[compare] {_fmt_minutes(time.time() - start)}; table.md and results.json in {output}", flush=True)
    if failures:
        sys.exit(f"{len(failures)} runs failed:\n" + "\n".join(failures))
    return rows


if __name__ == "__main__":
    main()
