"""Tables and ratios of the cost benchmark's results (markdown)."""
import statistics

from .measurement import key
from .pairs import PAIRS
from .steps import INFER_PARTS, PARTS, STEPS, VARIANTS

def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _fmt_t(s):
    return f"{s['median'] * 1e3:,.0f} ms" if s["median"] < 10 else f"{s['median']:.1f} s"


def _fmt_spread(s):
    return f"{s['min'] * 1e3:,.0f}–{s['max'] * 1e3:,.0f}" if s["max"] < 10 else f"{s['min']:.1f}–{s['max']:.1f} s"


def _split(k: str):
    item, _, v = k.partition("@")
    return item, v or "default"


def report_pair(name: str, res: dict) -> str:
    """Markdown table of one pair."""
    t = {k: summarize(v) for k, v in res["times"].items() if v}
    raw = res["times"]
    lines = [f"#### {PAIRS[name]['label']} — {res['height']}×{res['width']}, batch {res['batch']}, "
             f"{res['device']}, amp {res.get('amp', 'off')}, {res['threads']} threads, {res['repeats']} repeats after {res['warmup']} warm-up",
             "", "| item | median | min–max | × floor (median of per-round ratios) | peak memory |",
             "|---|---|---|---|---|"]
    mem = dict(res.get("memory", {}))
    mem.update(res.get("memory_inline", {}))
    order = {i: n for n, i in enumerate(STEPS + PARTS[:2] + INFER_PARTS[:3] + ("infer_student",) + INFER_PARTS[3:]
                                         + ("infer_teacher",))}
    for k in sorted(t, key=lambda k: (order.get(_split(k)[0], 99), VARIANTS.index(_split(k)[1]) if _split(k)[1] in VARIANTS else 9)):
        item, v = _split(k)
        ratio = ""
        floor = key("floor", v) if key("floor", v) in raw else "floor"
        if item in ("student", "floor", "kd", "apd") and raw.get(floor):
            ratio = f"{statistics.median(a / b for a, b in zip(raw[k], raw[floor])):.3f}"
        m = mem.get(k)
        m = f"{m / 2**30:.2f} GiB" if m is not None else ""
        lines.append(f"| {k} | {_fmt_t(t[k])} | {_fmt_spread(t[k])} | {ratio} | {m} |")
    lines.append("")
    d = derived(res)
    for k, value in d.items():
        lines.append(f"- {k}: {value}")
    check = res.get("teacher_check")
    if check:
        lines.append(f"- teacher no-grad check (one APD step, hook on the teacher backbone): {check}")
    return "\n".join(lines)


def derived(res: dict) -> dict:
    raw, out = res["times"], {}
    med = {k: statistics.median(v) for k, v in raw.items() if v}

    def paired(a, b):
        r = [x / y for x, y in zip(raw[a], raw[b])]
        return f"{statistics.median(r):.3f} (rounds: {', '.join(f'{x:.3f}' for x in r)})"

    for v in res.get("variants", ["default"]):
        tag = "" if v == "default" else f" [{v}]"
        apd, kd = key("apd", v), key("kd", v)
        floor = key("floor", v) if key("floor", v) in med else "floor"
        if apd in med and floor in med:
            out[f"APD step / floor{tag}"] = paired(apd, floor)
        if kd in med and floor in med:
            out[f"KD step / floor{tag}"] = paired(kd, floor)
        if apd in med and kd in med:
            out[f"APD's own share of the APD step ((apd − kd) / apd, medians){tag}"] = f"{(med[apd] - med[kd]) / med[apd]:.1%}"
        if key("apd_term", v) in med and apd in med:
            out[f"APD term fwd+bwd alone / APD step{tag}"] = f"{med[key('apd_term', v)] / med[apd]:.1%}"
        if key("kd_term", v) in med and apd in med:
            out[f"KD term fwd+bwd alone / APD step{tag}"] = f"{med[key('kd_term', v)] / med[apd]:.1%}"
        if v != "default":
            for item in ("kd_term", "apd_term", "student", "floor", "kd", "apd") + INFER_PARTS[:3] + (
                    "infer_student",) + INFER_PARTS[3:] + ("infer_teacher",):
                if item in raw and key(item, v) in raw:
                    out[f"{item}: {v} / default (per round)"] = paired(key(item, v), item)
        for what, prefix in (("", "infer"), (", network alone", "net")):
            s, t = key(f"{prefix}_student", v), key(f"{prefix}_teacher", v)
            if s in med and t in med:
                out[f"inference images/s student / teacher{what}{tag}"] = (
                    f"{1 / med[s]:.3f} / {1 / med[t]:.3f} = {med[t] / med[s]:.2f}×")
        for who in ("student", "teacher"):
            parts = [key(f"{p}_{who}", v) for p in ("pre", "net", "post")]
            whole = key(f"infer_{who}", v)
            if all(p in med for p in parts) and whole in med:
                out[f"inference split {who}{tag}: pre / net / post / whole"] = (
                    " / ".join(_fmt_t(summarize(raw[p])) for p in parts + [whole])
                    + f" (pre + post = {(med[parts[0]] + med[parts[2]]) / med[whole]:.1%} of the whole call)")
    for k, n in sorted(res.get("saved_bytes", {}).items()):
        out[f"tensors saved for the backward, {k}"] = f"{n / 2**20:,.0f} MiB"
    mem = dict(res.get("memory", {}))
    mem.update(res.get("memory_inline", {}))
    if all(k in mem for k in ("apd", "student", "teacher_fwd")):
        budget = mem["student"] + mem["teacher_fwd"]
        out["APD peak / (student peak + teacher-forward peak)"] = f"{mem['apd'] / budget:.3f} (target ≤ 1.10)"
    if "apd" in mem and "floor" in mem:
        out["APD peak / floor peak"] = f"{mem['apd'] / mem['floor']:.3f}"
    return out
