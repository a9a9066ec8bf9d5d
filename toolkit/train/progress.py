"""How training reports progress: silent (library default), plain lines (logs, pipes) or a rich bar."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def format_epoch(m: dict[str, Any], total: int) -> str:
    tta = f" (TTA {m['test_acc_tta']:6.2f}%)" if m.get("test_acc_tta") is not None else ""
    val = f"val acc {m['val_acc']:6.2f}%  " if m.get("val_acc") is not None else ""
    return (
        f"epoch {m['epoch']:>3}/{total}  train loss {m['train_loss']:.4f}  train acc {m['train_acc']:6.2f}%  "
        f"{val}{f'test acc {t:6.2f}%' if (t := m.get('test_acc')) is not None else 'no test eval'}{tta}  "
        f"{m['img_per_s']:8.1f} img/s  {m['epoch_seconds']:7.1f} s"
    )


def format_summary(s: dict[str, Any]) -> str:
    ref = (
        ""
        if s["reference_accuracy"] is None
        else (f" (reference {s['reference_accuracy']:.2f}%, delta {s['delta_vs_reference']:+.2f} pt)")
    )
    tta = f", with TTA {s['final_test_acc_tta']:.2f}%" if s.get("final_test_acc_tta") is not None else ""
    val = f"final val acc {s['final_val_acc']:.2f}%, " if s.get("final_val_acc") is not None else ""
    if s["final_test_acc"] is None:  # a run that never looked at the test set
        return (
            f"done: {val}best val acc {s['best_val_acc']:.2f}% at epoch {s['best_epoch']} (no test evaluation), "
            f"{s['total_seconds']:.1f} s, {s['img_per_s']:.1f} img/s on {s['device']} -> {s['run_dir']}"
        )
    return (
        f"done: {val}final test acc {s['final_test_acc']:.2f}%{tta}{ref}, best {s['best_test_acc']:.2f}% "
        f"at epoch {s['best_epoch']}, {s['total_seconds']:.1f} s, {s['img_per_s']:.1f} img/s on "
        f"{s['device']} -> {s['run_dir']}"
    )


class Reporter:
    """No-op base: subclasses override what they show."""

    def note(self, text: str) -> None: ...
    def start(self, info: dict[str, Any]) -> None: ...
    def epoch_start(self, epoch: int, total_epochs: int, batches: int, start_batch: int) -> None: ...
    def batch(self, done: int) -> None: ...
    def epoch_end(self, metrics: dict[str, Any]) -> None: ...
    def finish(self, summary: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


SilentReporter = Reporter


class PlainReporter(Reporter):
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.total = 0

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, info):
        resumed = "" if info["resumed_from_epoch"] is None else f", resumed after epoch {info['resumed_from_epoch']}"
        self._say(
            f"training {info['model']} on {info['device']} x{info['world_size']} "
            f"({info['train_size']} train / {f'{v} val / ' if (v := info.get('val_size')) else ''}"
            f"{info['test_size']} test images, {info['threads']} thread{'s' if info['threads'] != 1 else ''}"
            f"{resumed}) -> {info['run_dir']}\nspeed: {info['speed']}"
        )
        if info.get("compile_skipped"):
            self._say(f"note: --compile skipped: {info['compile_skipped']}")

    def note(self, text):
        self._say(text)

    def epoch_start(self, epoch, total_epochs, batches, start_batch):
        self.total = total_epochs

    def epoch_end(self, metrics):
        self._say(format_epoch(metrics, self.total))

    def finish(self, summary):
        self._say(format_summary(summary))


class RichReporter(PlainReporter):
    """Plain lines plus a live progress bar over the batches of the current epoch."""

    def __init__(self):
        from rich.console import Console

        super().__init__()
        self.console = Console()
        self.progress = None

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def epoch_start(self, epoch, total_epochs, batches, start_batch):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        super().epoch_start(epoch, total_epochs, batches, start_batch)
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{total_epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=batches, completed=start_batch)

    def batch(self, done):
        self.progress.update(self.task, completed=done)

    def epoch_end(self, metrics):
        self.close()
        super().epoch_end(metrics)

    def finish(self, summary):
        self.close()
        super().finish(summary)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
