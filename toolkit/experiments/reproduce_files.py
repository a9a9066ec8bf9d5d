"""reproduce.json, reproduce.md and reproduce.png: a reproduce result rendered; no computation happens here."""

from __future__ import annotations

from pathlib import Path

from toolkit.core.files import atomic_path, write_text
from toolkit.core.markdown import markdown_table
from toolkit.run.folder import REPRODUCE_MD, REPRODUCE_PNG
from toolkit.run.records import Reproduce

COLUMNS = ("seed", "final test acc %", "final TTA acc %", "epochs", "wall s", "img/s", "trained in", "run")


def _pct(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _trained_in(seed: dict) -> str:
    """The precision, memory format and compilation of one seed (older results did not record them)."""
    if seed.get("amp") is None:
        return "-"
    precision = "fp32" if seed["amp"] == "off" else seed["amp"]
    return ", ".join(
        [precision, "channels_last" if seed["channels_last"] else "contiguous"]
        + (["compiled"] if seed["compiled"] else [])
    )


def reproduce_markdown(r: dict) -> str:
    st = r["stats"]
    what = "TTA accuracy" if r["compared"].endswith("tta") else "accuracy"
    spread = (
        ""
        if st["std"] is None
        else (
            f" ± {st['std']:.2f} (sample std), 95 % t interval [{st['ci95'][0]:.2f}, {st['ci95'][1]:.2f}]"
            + (" (clipped to 0-100 %)" if st.get("ci95_clipped") else "")
        )
    )
    ref = (
        "no published figure to compare with"
        if r["reference_accuracy"] is None
        else f"reference {r['reference_accuracy']:.2f} % ({r['reference_source']})"
    )
    verdict = "" if r["verdict"] is None else f"; delta {r['delta']:+.2f} pt; verdict: **{r['verdict']}**"
    data = r.get("data_provenance") or {}
    rows = [
        [
            s["seed"],
            _pct(s["final_test_acc"]),
            _pct(s["final_test_acc_tta"]),
            s["epochs"],
            f"{s['total_seconds']:.0f}",
            f"{s['img_per_s']:.0f}",
            _trained_in(s),
            s["run_dir"],
        ]
        for s in r["per_seed"]
    ]
    return (
        f"# Reproduce: {r['model']}\n\n{r['seeds']} seed(s); test {what}: mean {st['mean']:.2f} %{spread}, "
        f"min {st['min']:.2f}, max {st['max']:.2f}; {ref}{verdict}.\n\n"
        f"Data: {data.get('note', 'unknown')}.\n\n" + markdown_table(COLUMNS, rows)
    )


def reproduce_png(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in r["per_seed"]:
        epochs = [e["epoch"] for e in s["per_epoch"]]
        ax.plot(epochs, [e["test_acc"] for e in s["per_epoch"]], marker="o", ms=3, label=f"seed {s['seed']}")
        tta = [(e["epoch"], e["test_acc_tta"]) for e in s["per_epoch"] if e.get("test_acc_tta") is not None]
        if tta:
            ax.plot(*zip(*tta, strict=True), marker="*", ms=9, ls="", color=ax.lines[-1].get_color())
    if r["reference_accuracy"] is not None:
        ax.axhline(
            r["reference_accuracy"], color="k", ls="--", lw=1, label=f"published {r['reference_accuracy']:.2f} %"
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy % (star: with TTA)")
    ax.set_title(f"{r['model']}: {r['seeds']} seed(s), {r['verdict'] or 'no published figure'}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_reproduce(r: dict, folder: Path) -> list[Path]:
    folder = Path(folder)
    Reproduce.write(folder, r)
    write_text(folder / REPRODUCE_MD, reproduce_markdown(r))
    reproduce_png(r, folder / REPRODUCE_PNG)
    return [Reproduce.path(folder), folder / REPRODUCE_MD, folder / REPRODUCE_PNG]
