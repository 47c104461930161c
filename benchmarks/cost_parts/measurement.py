"""The cost benchmark's workers, each run in a fresh process by ``benchmarks/cost.py``: timing (round-robin
over items and variants), peak memory of one step mode, and the demo data loader."""
import os
import resource
import time

from .pairs import ROOT
from .steps import AFFECTED, MEMORY_MODES, PARTS, Bench

LOADER_CONFIG = "configs/demo/pspnet_r18_demo.py"


def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _teacher_no_grad_check(bench: "Bench") -> dict:
    """Run one APD step with hooks on the teacher: was grad mode off, and did no teacher param get .grad?"""
    seen = []
    target = bench.teacher.backbone

    def hook(module, inputs, output):
        import torch

        tensors = list(output.values()) if isinstance(output, dict) else [output]
        seen.append((torch.is_grad_enabled(), any(t.requires_grad for t in tensors)))

    handle = target.register_forward_hook(hook)
    try:
        bench.step("apd")
    finally:
        handle.remove()
    return {
        "teacher_forward_calls": len(seen),
        "grad_enabled_in_teacher_forward": any(g for g, _ in seen),
        "teacher_output_requires_grad": any(r for _, r in seen),
        "teacher_params_with_grad": sum(p.grad is not None for p in bench.teacher.parameters()),
        "teacher_params_requiring_grad": sum(p.requires_grad for p in bench.teacher.parameters()),
        "teacher_in_eval_mode": not any(m.training for m in bench.teacher.modules()),
    }


def worker_time(args) -> dict:
    import torch
    from detectron2.utils.events import EventStorage

    items = [i for i in args.items.split(",") if i]
    variants = [v for v in getattr(args, "variants", "default").split(",") if v]
    args.compile_backend = getattr(args, "compile_backend", "inductor")
    args.memory_inline = getattr(args, "memory_inline", False)
    height, width = args.height, args.width
    with EventStorage(0):
        benches = {v: Bench(args.configs, height, width, args.batch, args.device, args.amp, compiled=v == "compiled",
                            compile_backend=args.compile_backend) for v in variants}
        for bench in benches.values():
            if any(i in PARTS[:2] for i in items):
                bench.prepare_terms()  # (a training-mode forward: needs batch > 1 for the PSP 1×1 bin)
        check = _teacher_no_grad_check(benches[variants[0]]) if "apd" in items else {}
        runs = [(i, v) for i in items for v in variants if v == variants[0] or i in AFFECTED[v]]
        times = {key(i, v): [] for i, v in runs}
        for round_ in range(args.warmup + args.repeats):
            for item, v in runs:
                _sync(args.device)
                start = time.perf_counter()
                benches[v].run(item)
                _sync(args.device)
                if round_ >= args.warmup:
                    times[key(item, v)].append(time.perf_counter() - start)
        profile = _profile(benches, args) if args.profile else None
        saved = {key(i, v): _saved_bytes(benches[v], i) for i, v in runs if i in ("kd_term", "apd_term")}
        memory = _memory_inline(benches, runs) if args.memory_inline and args.device.startswith("cuda") else None
    out = {"times": times, "teacher_check": check, "threads": torch.get_num_threads(), "profile": profile,
           "variants": variants, "saved_bytes": saved}
    if memory is not None:
        out["memory_inline"] = memory
    return out


def key(item: str, variant: str) -> str:
    """The result key of ``item`` timed under ``variant``."""
    return item if variant == "default" else f"{item}@{variant}"


def _saved_bytes(bench: "Bench", item: str) -> int:
    """Bytes of the distinct tensor storages autograd saves for the backward during one run of ``item``
    (exact and independent of the machine's load; parameters included, alike for every variant)."""
    import torch

    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        bench.run(item)
    return sum(storages.values())


def _memory_inline(benches, runs) -> dict:
    """CUDA: peak allocated during one run of each step mode / variant above allocated just before it."""
    import gc

    import torch

    out = {}
    for item, v in runs:
        if item not in MEMORY_MODES:
            continue
        bench = benches[v]
        for model in (bench.apd, bench.student, bench.floor, bench.kd):
            for p in model.parameters():
                p.grad = None
        gc.collect()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        bench.run(item)
        torch.cuda.synchronize()
        out[key(item, v)] = torch.cuda.max_memory_allocated() - base
    return out


def _profile(benches, args) -> str:
    """torch.profiler table (top 25 ops by self device/CPU time) of one run of each ``--profile`` item."""
    from torch.profiler import ProfilerActivity, profile

    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    tables = []
    for item in [i for i in args.profile.split(",") if i]:
        name, _, v = item.partition("@")
        with profile(activities=activities) as prof:
            benches[v or "default"].run(name)
            _sync(args.device)
        key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        tables.append(f"--- profile of '{item}' (one run, sorted by {key})\n"
                      + prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))
    text = "\n".join(tables)
    print(text, flush=True)
    return text


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker_memory(args) -> dict:
    import gc

    import torch
    from detectron2.utils.events import EventStorage

    mode = args.items
    cuda = args.device.startswith("cuda")
    with EventStorage(0):
        bench = Bench(args.configs, args.height, args.width, args.batch, args.device, args.amp)
        if mode in bench.models:
            bench.trainer(mode)  # optimiser built before the baseline; its state is part of the step
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            # Warm-up first (optimiser state, library workspaces), then reset the peak; cudnn.benchmark is
            # off here: its algorithm search allocates trial workspaces of tens of GiB no step holds.
            for _ in range(args.warmup):
                bench.run(mode)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            reset = False
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset the peak-RSS counter (VmHWM / ru_maxrss) to the current RSS
                reset = True
            except OSError:
                pass
            base = _rss_kib("VmRSS") * 1024
        for _ in range(1 if cuda else args.warmup + 1):
            bench.run(mode)
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            how = ("torch.cuda.max_memory_allocated of one step after warm-up - allocated after "
                   "construction (optimiser state included)")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            how = ("peak RSS (reset after construction) - RSS after construction" if reset
                   else "ru_maxrss - RSS after construction (peak not resettable)")
    return {"mode": mode, "peak_bytes": peak - base, "baseline_bytes": base, "how": how}


def worker_loader(args) -> dict:
    """Time the real positional loader of the demo configs on the generated data."""
    from detectron2.config import instantiate

    import apd  # noqa: F401
    from apd.config import load_config

    cfg = load_config(os.path.join(ROOT, LOADER_CONFIG), [])
    loader = instantiate(cfg.dataloader.train)
    it = iter(loader)
    start = time.perf_counter()
    next(it)
    first = time.perf_counter() - start
    per_batch = []
    for _ in range(args.loader_iters):
        start = time.perf_counter()
        next(it)
        per_batch.append(time.perf_counter() - start)
    return {
        "config": LOADER_CONFIG,
        "batch_size": cfg.dataloader.train.total_batch_size,
        "num_workers": cfg.dataloader.train.num_workers,
        "crop": list(cfg.dataloader.train.mapper.augmentations.crop_size),
        "first_batch_s": first,
        "per_batch_s": per_batch,
    }
