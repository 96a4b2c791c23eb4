"""The run's verdict: the goals as PASS/MISS lines with their numbers, and a markdown block for
docs/benchmarks.md. Both read only the results dict, so a skipped or failed section gives a MISS
that says why instead of an error."""

from __future__ import annotations

from typing import Any

GOAL_STREAMS = 256  # live full-size Realtime streams per GPU (an H200)


def _why_missing(results: dict[str, Any], section: str) -> str:
    status = results.get("sections", {}).get(section, {})
    detail = status.get("error") or status.get("reason") or ""
    return f"not measured (section {section}: {status.get('status', 'not run')}{': ' + detail if detail else ''})"


def _column(results: dict[str, Any], op: str, column: str) -> dict[str, Any]:
    return results.get("ops", {}).get("rows", {}).get(op, {}).get("columns", {}).get(column, {})


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        out.append({"goal": name, "status": "PASS" if ok else "MISS", "detail": detail})

    copy = results.get("copy", {}).get("same_size_bps")
    shape = results.get("copy", {}).get("same_size_shape", "")
    for op, title in (("rms_norm", "RMSNorm"), ("ada_rms_norm", "Ada-RMSNorm")):
        for way, need in (("fwd", 0.9), ("bwd", 0.8)):
            name = f"{title} {'forward' if way == 'fwd' else 'backward'} >= {need:.0%} of copy bandwidth at [{shape}] bf16"
            col = _column(results, op, "voxkit")
            if not copy:
                add(name, None, _why_missing(results, "copy"))
            elif f"{way}_bps" not in col:
                add(name, None, col.get("error") or _why_missing(results, "ops"))
            else:
                frac = col[f"{way}_bps"] / copy
                add(name, frac >= need, f"{col[f'{way}_bps'] / 1e12:.2f} TB/s = {100 * frac:.1f} % of {copy / 1e12:.2f} TB/s "
                                        f"({col[f'{way}_s'] * 1e6:.1f} µs)")
    name = "SwiGLU forward >= torch.compile's"
    mine, comp = _column(results, "swiglu", "voxkit"), _column(results, "swiglu", "torch.compile")
    if "fwd_bps" in mine and "fwd_bps" in comp:
        add(name, mine["fwd_bps"] >= comp["fwd_bps"],
            f"voxkit {mine['fwd_bps'] / 1e12:.2f} TB/s vs torch.compile {comp['fwd_bps'] / 1e12:.2f} TB/s "
            f"(backward: {mine['bwd_bps'] / 1e12:.2f} vs {comp['bwd_bps'] / 1e12:.2f} TB/s)")
    else:
        add(name, None, mine.get("error") or comp.get("error") or _why_missing(results, "ops"))
    name = "every kernel within tolerance of the float64 reference"
    corr = results.get("correctness", {})
    if not corr.get("checked"):
        add(name, None, _why_missing(results, "correctness"))
    else:
        detail = (f"{corr['passed_cases']}/{corr['checked']} cases (op x shape x dtype, forward and gradients) pass; "
                  f"a kernel ran in {corr['kernel_cases']}")
        ok = corr.get("passed") and corr["kernel_cases"] > 0
        if corr.get("passed") and not corr["kernel_cases"]:
            detail += " -- no kernel ran (references only): nothing was checked"
        add(name, ok, detail)
    name = "batch-1 decode (Mistral-7B shape) >= 80 % of the bandwidth bound"
    dec = results.get("decode", {})
    ours = [r for r in dec.get("rows", []) if r.get("variant") != "transformers" and "tok_s" in r]
    if not ours:
        add(name, None, _why_missing(results, "decode"))
    else:
        best = max(ours, key=lambda r: r["tok_s"])
        hf = next((r for r in dec["rows"] if r.get("variant") == "transformers" and "tok_s" in r), None)
        peer = f"; transformers generate {hf['tok_s']:.1f} tokens/s" if hf else "; transformers not measured"
        add(name, best["of_bound"] >= 0.8, f"{best['label']}: {best['tok_s']:.1f} tokens/s = {100 * best['of_bound']:.1f} % of "
                                           f"{dec['bound_tok_s']:.1f}{peer}")
    name = f"full-size Realtime live streams per GPU >= {GOAL_STREAMS} (goal set for an H200)"
    st = results.get("streams", {})
    if "max_realtime_on" not in st:
        add(name, None, _why_missing(results, "streams"))
    else:
        add(name, st["max_realtime_on"] >= GOAL_STREAMS,
            f"{st['max_realtime_on']} real-time with kernels ({st['max_realtime_off']} without), limited by {st.get('limited_by')}; "
            f"{st['fit_in_memory']} fit in memory at {st['state_bytes_per_stream'] / 1e9:.2f} GB of caches per stream; "
            f"CUDA graphs {'on' if st.get('graphs') else 'off'}; on {results.get('env', {}).get('device', '?')}")
    return out


def _cell(col: dict[str, Any], way: str) -> str:
    if f"{way}_s" not in col:
        return "—"
    return f"{col[f'{way}_s'] * 1e6:.1f} µs ({col[f'{way}_bps'] / 1e12:.2f} TB/s)"


def markdown(results: dict[str, Any]) -> str:
    env = results.get("env", {})
    lines = [f"Measured on {env.get('device', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}, "
             f"Triton {env.get('triton', '?')}, {env.get('date', '')}; kernels: {env.get('kernels', {}).get('status', '?')}.", ""]
    copy = results.get("copy", {})
    if copy.get("same_size_bps"):
        lines += [f"Copy bandwidth: {copy['same_size_bps'] / 1e12:.2f} TB/s ([{copy['same_size_shape']}] bf16), "
                  f"{copy.get('big_bps', 0) / 1e12:.2f} TB/s ({copy.get('big_bytes', 0) / 2**30:.2f} GiB).", ""]
    rows = results.get("ops", {}).get("rows", {})
    if rows:
        cols = [c for c in ("voxkit", "F.rms_norm", "torch.compile", "eager", "Liger")
                if any(c in r["columns"] and "fwd_s" in r["columns"][c] for r in rows.values())]
        for way, title in (("fwd", "forward"), ("bwd", "backward")):
            lines.append(f"| op ({title}, bf16) | shape | " + " | ".join(cols) + " |")
            lines.append("|---|---|" + "---:|" * len(cols))
            for op, r in rows.items():
                lines.append(f"| {op} | {r['shape']} | " + " | ".join(_cell(r["columns"].get(c, {}), way) for c in cols) + " |")
            lines.append("")
    corr = results.get("correctness", {})
    if corr.get("checked"):
        lines += [f"Correctness vs float64: {corr['passed_cases']}/{corr['checked']} cases pass "
                  f"(kernel ran in {corr['kernel_cases']}).", ""]
    train = results.get("train", {})
    if train.get("rows"):
        lines += [f"Training step ({train.get('model')}, {train.get('tokens')} tokens, forward + backward):", "",
                  "| setup | kernels off | kernels on | speed-up |", "|---|---:|---:|---:|"]
        for r in train["rows"]:
            if "on_s" in r and "off_s" in r:
                lines.append(f"| {r['setup']} | {r['off_s'] * 1e3:.1f} ms | {r['on_s'] * 1e3:.1f} ms | {r['speedup']:.2f}x |")
        lines.append("")
    dec = results.get("decode", {})
    if dec.get("rows"):
        lines += [f"Batch-1 decode ({dec.get('model')} shape, {dec.get('dtype')}; bound {dec.get('bound_tok_s', 0):.1f} tokens/s):", "",
                  "| decoder | tokens/s | % of bound |", "|---|---:|---:|"]
        for r in dec["rows"]:
            if "tok_s" in r:
                lines.append(f"| {r['label']} | {r['tok_s']:.1f} | {100 * r['of_bound']:.1f} % |")
            else:
                lines.append(f"| {r['label']} | — ({r.get('error', '')[:80]}) | |")
        lines.append("")
    st = results.get("streams", {})
    if st.get("rows"):
        lines += [f"Live Realtime streams (lock-step, 80 ms per step; {st.get('fit_in_memory')} fit in memory):", "",
                  "| streams | ms/step on (p95) | ms/step off (p95) | real-time on/off |", "|---:|---:|---:|---|"]
        def cell(r: dict[str, Any], key: str) -> str:
            return f"{r[key + '_ms']:.1f} ({r[key + '_p95_ms']:.1f})" if key + "_ms" in r else "—"

        def yes(r: dict[str, Any], key: str) -> str:
            return ("yes" if r[key + "_realtime"] else "no") if key + "_realtime" in r else "—"

        for r in sorted(st["rows"], key=lambda r: r["streams"]):
            note = f" {r['error'][:40]}" if "error" in r else ""
            lines.append(f"| {r['streams']} | {cell(r, 'on')} | {cell(r, 'off')} | {yes(r, 'on')}/{yes(r, 'off')}{note} |")
        lines.append("")
    for g in results.get("goals", []):
        lines.append(f"- {g['status']} {g['goal']}: {g['detail']}")
    return "\n".join(lines).rstrip() + "\n"
