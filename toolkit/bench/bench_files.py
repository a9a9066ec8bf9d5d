"""bench.json, bench.md and bench.png: a bench result rendered; no computation happens here."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.core.files import atomic_path, write_text
from toolkit.core.markdown import markdown_table
from toolkit.run.folder import BENCH_MD, BENCH_PNG
from toolkit.run.records import Bench

INFER_COLUMNS = (
    "runtime",
    "file",
    "variant",
    "device",
    "batch",
    "img/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "CV %",
    "rounds",
    "first run ms",
    "% of fp32 peak",
)
TRAIN_COLUMNS = (
    "loop",
    "device",
    "batch",
    "img/s",
    "data ms",
    "forward ms",
    "backward ms",
    "optimizer ms",
    "CV %",
    "× seed loop",
    "% of fp32 peak",
)


def _pct(v, disturbed: str | None = None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f} (disturbed)" if disturbed else f"{v:.0f}"


def inference_rows(result) -> list[list[str]]:
    rows = []
    for case in result["inference"]:
        for r in case["results"]:
            lat = r["latency_ms"]
            rows.append(
                [
                    case["runtime"],
                    f"{case.get('format', 'checkpoint')} ({case.get('precision', 'fp32')})",
                    case["variant"] or "-",
                    case["device"],
                    str(r["batch_size"]),
                    f"{r['img_per_s']:,.0f}",
                    f"{lat['p50']:.2f}",
                    f"{lat['p90']:.2f}",
                    f"{lat['p99']:.2f}",
                    f"{100 * r['cv']:.1f}",
                    str(r["rounds"]),
                    f"{r['first_run_ms']:.1f}",
                    _pct(r["pct_of_peak"], r.get("disturbed")),
                ]
            )
    return rows


def training_rows(result) -> list[list[str]]:
    rows = []
    for t in result["training"]:
        ph = t["phase_ms"]
        rows.append(
            [
                t["name"],
                t["device"],
                str(t["batch_size"]),
                f"{t['img_per_s']:,.1f}",
                f"{ph['data']:.1f}",
                f"{ph['forward']:.1f}",
                f"{ph['backward']:.1f}",
                f"{ph['optimizer']:.1f}",
                f"{100 * t['cv']:.1f}",
                f"{t['speedup_vs_seed']:.2f}",
                _pct(t["pct_of_peak"], t.get("disturbed")),
            ]
        )
    return rows


def bench_markdown(result) -> str:
    m = result["machine"]
    sources = result.get("matmul_peak_source", {})
    peak = ", ".join(
        f"{d} {g:,.0f} GFLOP/s ({sources[d] + ' GEMM, the fastest engine; ' if d in sources else ''}"
        f"before the cases {v['before']:,.0f}, after {v['after']:,.0f}, drift {100 * v['drift']:+.0f} %)"
        for (d, g), v in zip(result["matmul_peak_gflops"].items(), result["matmul_peak_drift"].values(), strict=True)
    )
    flags = ", ".join(k for k, v in m["cpu_flags"].items() if v) or "none of avx2/avx512/amx"
    fastest_ms = min((r["latency_ms"]["p50"] for c in result["inference"] for r in c["results"]), default=None)
    overhead = result["harness_overhead_us"]
    share = "" if not fastest_ms else f" = {100 * overhead / (1e3 * fastest_ms):.3f} % of the fastest call"
    text = (
        f"# Benchmark: {result['model']} ({result['run_dir']})\n\n"
        f"CPU: {m['cpu_model']} ({m['logical_cpus']} logical CPUs; {flags}); GPU: {m['gpu'] or 'none'}; "
        f"torch {m['torch']}, onnxruntime {m.get('onnxruntime', '-')}; threads pinned to {result['threads']} "
        f"(onnxruntime inter-op 1). fp32 matmul peak measured in this run: {peak}. Forward pass: "
        f"{result['forward_flops_per_image'] / 1e6:,.1f} MFLOP per image (FlopCounterMode; int8 and bf16 rows, "
        f"and convolution kernels that beat one large GEMM, may pass the fp32 peak). Each runtime ran "
        f"in its own process; timing-loop overhead {overhead:.2f} µs per call{share}.\n"
        + "".join(f"\n**Disturbed:** {line}; rerun on an idle machine.\n" for line in result.get("disturbed", []))
        + "\n## Inference\n\n"
        + markdown_table(INFER_COLUMNS, inference_rows(result))
        + "".join(f"\n- {note}" for note in result.get("notes", []))
        + (f"\n\n**{result['recommendation']['text']}**\n" if result.get("recommendation") else "\n")
    )
    if result["training"]:
        text += (
            "\n## Training steps\n\nSynthetic CIFAR-shaped data; % of peak counts 3× the forward FLOPs "
            "(forward + backward).\n\n" + markdown_table(TRAIN_COLUMNS, training_rows(result))
        )
    return text


def bench_png(result, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = result["inference"]
    batches = sorted({r["batch_size"] for c in cases for r in c["results"]})
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.5 * len(batches) * len(cases))), 4.5))
    width = 0.8 / max(1, len(cases))
    for i, c in enumerate(cases):
        by_batch = {r["batch_size"]: r for r in c["results"]}
        xs = [j + i * width for j, b in enumerate(batches) if b in by_batch]
        ys = [by_batch[b]["img_per_s"] for b in batches if b in by_batch]
        label = c.get("label", f"{c['runtime']}/{c['device']}") + (f" {c['variant']}" if c["variant"] else "")
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(batches))], [f"batch {b}" for b in batches])
    ax.set_ylabel("images / s (higher is better)")
    ax.set_title(
        f"{result['model']} inference, {result['threads']} threads — {result['machine']['cpu_model']}", fontsize=9
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_bench(result, run_dir: str | os.PathLike) -> list[Path]:
    run_dir = Path(run_dir)
    Bench.write(run_dir, result)
    write_text(run_dir / BENCH_MD, bench_markdown(result))
    bench_png(result, run_dir / BENCH_PNG)
    return [Bench.path(run_dir), run_dir / BENCH_MD, run_dir / BENCH_PNG]
