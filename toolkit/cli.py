"""The `toolkit` command: each command parses options, calls one library function and renders the result.

Expected failures (ToolkitError) print one line on stderr and exit non-zero; anything else is a bug and
keeps its traceback. Heavy packages load inside the commands, so `toolkit --help` stays quick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from toolkit.core.errors import ToolkitError
from toolkit.run.folder import BEST_TOML, DEFAULT_ROOT, MANIFEST, REPORT_HTML, STUDY_DB, SWEEP, SWEEP_MD, SWEEPS
from toolkit.targets import formats as registry  # the registries load without torch: help texts come from them
from toolkit.targets.runtimes import RUNTIMES
from toolkit.train.config import TrainConfig  # its fields only: torch loads when a command runs

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show defaults as [recipe], [auto]: plain text, not markup
    help=f"Train CIFAR CNNs, export them ({registry.summary_of_formats()}), verify every runtime agrees "
    f"({', '.join(RUNTIMES)}), benchmark them.",
)


@contextlib.contextmanager
def user_errors():
    """Turn a ToolkitError into one line on stderr and its exit code."""
    try:
        yield
    except ToolkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


Opt = typer.Option
# Options that more than one command takes, declared once.
AllowModified = Annotated[
    bool,
    Opt("--allow-modified", help=f"Use files whose sha256 differs from {MANIFEST} (judged on their figures)."),
]


# TrainConfig declares its own options (train/config.py, `option`): their type and help come from there.
_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_OPTION_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
TRAIN_OPTIONS = tuple(name for name, f in _TRAIN_FIELDS.items() if "help" in f.metadata)


def train_option(name: str) -> Any:
    """The command-line option of TrainConfig field `name`, as the field declares it."""
    f = _TRAIN_FIELDS[name]
    kind = _OPTION_TYPES[str(f.type).removesuffix(" | None")]
    flag = name.replace("_", "-")
    return Annotated[
        Optional[kind], Opt(*((f"--{flag}/--no-{flag}",) if kind is bool else ()), help=f.metadata["help"])
    ]


Device, Dataset, DataDir, LimitTrain, LimitTest = map(
    train_option, ("device", "dataset", "data_dir", "limit_train", "limit_test")
)
Devices = Annotated[
    Optional[list[str]],
    Opt("--device", metavar="DEVICE", help="cpu | cuda | mps; repeat for several [every available one]."),
]
ModelArgs = Annotated[
    Optional[list[str]],
    Opt("--model-arg", metavar="KEY=VALUE", help="A factory model's keyword argument (a TOML value); repeat."),
]
# A run folder: the argument every command that reads one takes, under one name.
Run = Annotated[Optional[str], typer.Argument(metavar="RUN", help="Run folder [the newest trained run in artifacts/].")]


def _run_or_newest(run: str | None, err: bool = False) -> str:
    """The run folder given, or the newest trained run under artifacts/, said on the terminal."""
    if run is not None:
        return run
    from toolkit.run.folder import latest_run

    newest = str(latest_run())
    typer.echo(f"using the newest trained run: {newest}", err=err)
    return newest


# A checkpoint of a model built by a factory outside the registry is rebuilt only when the user names it again.
TrustModel = Annotated[
    Optional[str],
    Opt("--model", help="The run's model factory (package.module:function), named to allow importing it."),
]
Threads = Annotated[Optional[int], Opt(help="CPU threads for every runtime [all cores].")]
Runtimes = Annotated[
    Optional[list[str]],
    Opt("--runtime", metavar="RUNTIME", help=f"{' | '.join(RUNTIMES)}; repeat for several [every installed one]."),
]


def _formats_option() -> Any:
    """--format, its help listing the registry's formats and sets as they are when the command line is built."""
    sets = registry.format_sets()
    return Annotated[
        Optional[list[str]],
        Opt(
            "--format",
            metavar="FORMAT",
            help=f"{', '.join(registry.export_formats())}, comma-separated or repeated, or a set: {', '.join(sets)} "
            f"(see `toolkit formats`) [export: {','.join(sets['default'])}; verify, bench: every exported file].",
        ),
    ]


Formats = _formats_option()
TERMINAL_COLUMNS = 100  # tables print this wide; --wide prints every column (the run's .md files have them all)
Wide = Annotated[bool, Opt("--wide", help="Print every column (wider than 100 characters).")]

# The speed switches: left out, each is decided by timing on this machine (toolkit/train/speed.py).
Amp, ChannelsLast, Compile = map(train_option, ("amp", "channels_last", "compile"))


class _DerivedCommand:
    """A command whose options are declared elsewhere, once: TrainConfig's fields for `train`, the format
    registry's writer options for `export`. typer reads `__signature__` each time it builds the command line,
    so what is declared there (a format a plug-in registers included) is what the command takes and --help
    shows. `replace` rebuilds a fixed parameter's option the same way (--format's list of formats)."""

    def __init__(
        self, fn, options: Callable[[], list[inspect.Parameter]], first: bool = False, **replace: Callable[[], Any]
    ):
        self.fn, self.options, self.first, self.replace = fn, options, first, replace
        self.__name__, self.__doc__, self.__module__ = fn.__name__, fn.__doc__, fn.__module__

    def __call__(self, **kwargs: Any) -> Any:
        return self.fn(**kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        base = inspect.signature(self.fn, eval_str=True)
        fixed = [
            p.replace(annotation=self.replace[p.name]()) if p.name in self.replace else p
            for p in base.parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        derived = self.options()
        return base.replace(parameters=[*derived, *fixed] if self.first else [*fixed, *derived])

    @property
    def __annotations__(self) -> dict[str, Any]:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}


def _keyword(name: str, annotation: Any) -> inspect.Parameter:
    # Positional-or-keyword (every one has a default): typer makes it an option either way, and it may then
    # come before the fixed parameters, as train's do.
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation)


def _given(**options):
    """Only the options typed on the command line: the library fills the rest from its own defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _train(
    model_arg: ModelArgs = None,
    resume: Annotated[Optional[str], Opt(help="Continue from this checkpoint or run folder.")] = None,
    progress: Annotated[str, Opt(help="auto | bar | plain | none.")] = "auto",
    config: Annotated[
        Optional[str], Opt(help="TOML or JSON file of TrainConfig fields; options given here override it.")
    ] = None,
    **given: Any,
):
    """Train a model on CIFAR-10/100, your image folder or a synthetic set; writes checkpoint.pt, metrics.jsonl,
    summary.json.

    With --resume, options other than --epochs, --device, --data-dir and --download must match the run's.
    """
    from toolkit.models.external import parse_model_args
    from toolkit.train.config import load_config_file
    from toolkit.train.loop import train as run_training
    from toolkit.train.progress import PlainReporter, Reporter, RichReporter

    if progress == "auto":
        progress = "bar" if sys.stdout.isatty() else "plain"
    reporter = {"bar": RichReporter, "plain": PlainReporter, "none": Reporter}.get(progress)
    with user_errors():
        if reporter is None:
            raise ToolkitError(f"unknown --progress {progress!r}; choose auto, bar, plain or none")
        if config is not None and resume is not None:
            raise ToolkitError("--config starts a new run; --resume continues one with its own configuration")
        base = load_config_file(config) if config is not None else None
        if model_arg:  # merged over the config file's model_args, key by key
            given["model_args"] = {**((base and base.model_args) or {}), **parse_model_args(model_arg)}
        rep = reporter()
        try:
            # Only what was typed is passed on: it overrides the file, the library fills the rest from the
            # recipe, and refuses changes on --resume.
            run_training(base, resume=resume, reporter=rep, **_given(**given))
        finally:
            rep.close()


app.command("train")(
    _DerivedCommand(_train, lambda: [_keyword(name, train_option(name)) for name in TRAIN_OPTIONS], first=True)
)


@app.command()
def reproduce(
    model: Annotated[str, typer.Argument(help="Registry model with a published figure (see `toolkit models`).")],
    seeds: Annotated[int, Opt(help="Seeds 0..N-1, each a full run.")] = 3,
    epochs: Annotated[Optional[float], Opt(help="Epochs [recipe]; fewer for a quick check.")] = None,
    device: Device = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    limit_train: LimitTrain = None,
    limit_test: LimitTest = None,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile: Compile = None,
    out: Annotated[str, Opt(help="Runs go to OUT/reproduce-MODEL/seed-K/.")] = DEFAULT_ROOT,
    progress: Annotated[str, Opt(help="plain | none: per-epoch lines of every seed.")] = "plain",
):
    """Run MODEL's recipe with several seeds; mean, spread and a 95 % t interval against its published figure.

    Writes reproduce.json, reproduce.md and reproduce.png beside the seed folders. Running it again skips
    finished seeds and resumes an interrupted one.
    """
    from toolkit.experiments.reproduce import reproduce as run_reproduce
    from toolkit.train.progress import PlainReporter, Reporter

    given = dict(
        epochs=epochs,
        device=device,
        dataset=dataset,
        data_dir=data_dir,
        limit_train=limit_train,
        limit_test=limit_test,
        amp=amp,
        channels_last=channels_last,
        compile=compile,
    )
    with user_errors():
        if progress not in ("plain", "none"):
            raise ToolkitError(f"unknown --progress {progress!r}; choose plain or none")
        rep = PlainReporter() if progress == "plain" else Reporter()
        result = run_reproduce(
            model,
            seeds,
            out=out,
            reporter=rep,
            progress=typer.echo,
            **_given(**given),
        )
    st = result["stats"]
    spread = "" if st["std"] is None else f" ± {st['std']:.2f}, 95 % CI [{st['ci95'][0]:.2f}, {st['ci95'][1]:.2f}]"
    what = "TTA accuracy" if result["compared"].endswith("tta") else "accuracy"
    ref = (
        "no published figure"
        if result["reference_accuracy"] is None
        else f"reference {result['reference_accuracy']:.2f} %: {result['verdict']}"
    )
    typer.echo(f"{model}: {result['seeds']} seed(s), test {what} {st['mean']:.2f} %{spread}; {ref}")
    note = (result.get("data_provenance") or {}).get("note")
    if note:
        typer.echo(f"data: {note}")
    typer.echo("wrote " + ", ".join(result["files"]))


@app.command()
def models():
    """List the registry and installed toolkit.models plugins: parameters, reference accuracy, recipe, source.

    Any other model is named by its factory: --model package.module:function [--model-arg KEY=VALUE ...].
    """
    from rich.console import Console
    from rich.table import Table

    from toolkit.models import get_spec, list_models

    table = Table("model", "params", "reference", "recipe", "source")
    with user_errors():
        specs = [get_spec(name) for name in list_models()]
    for spec in specs:
        r = spec.recipe
        params = sum(p.numel() for p in spec.build(10).parameters())
        ref = "-" if spec.reference_accuracy is None else f"{spec.reference_accuracy:.2f}%"
        recipe = f"{r.optimizer} lr {r.lr:g}, batch {r.batch_size}, {r.epochs} ep, {r.schedule}"
        table.add_row(spec.name, f"{params / 1e6:.2f} M", ref, recipe, spec.source)
    Console().print(table)


@app.command()
def formats():
    """List the formats export writes, the runtimes that read each, and what is installed here."""
    from rich.console import Console
    from rich.table import Column, Table

    from toolkit.targets.formats import FORMATS, export_formats, format_sets
    from toolkit.targets.runtimes import runtime_class

    table = Table("precision", "runtimes (x: not installed here)", "in sets")
    for i, column in enumerate(("format", "file")):  # names the user types: never cut
        table.columns.insert(i, Column(column, no_wrap=True, min_width=len(column)))
    for name in export_formats():
        f = FORMATS[name]
        readers = [r if runtime_class(r).unavailable_reason("cpu") is None else f"{r} (x)" for r in f.runtimes]
        if f.missing():
            readers.append(f"writer needs {f.requires}")
        sets = ", ".join(k for k, v in format_sets().items() if name in v)
        table.add_row(name, f.filename, f.precision, ", ".join(readers), sets)
    Console(width=max(Console().width, TERMINAL_COLUMNS)).print(table)


def _export(
    run: Run = None,
    format: Formats = None,
    data_dir: DataDir = None,
    threads: Threads = None,
    model: TrustModel = None,
    **writer_options: Any,
):
    """Export a run to every format in the registry (see `toolkit formats`); each file is re-loaded and checked
    against eager first."""
    from toolkit.export import export as run_export
    from toolkit.run.folder import MANIFEST

    with user_errors():
        result = run_export(
            _run_or_newest(run),
            format,
            progress=typer.echo,
            **_given(data_dir=data_dir, threads=threads, model=model, **writer_options),
        )
    for fmt, path in result.files.items():
        c = result.checks[fmt]
        if "atol" in c:
            check = f"match eager, max |diff| {c['max_abs_diff']:.1e}"
        else:
            check = f"run, top-1 agreement {c['top1_agreement']:.1f}% on random images (verify gates it)"
        preset = f", {c['int8_preset']}: {c['int8_preset_reason']}" if "int8_preset" in c else ""
        if "compile_seconds" in c:
            preset += f", compiled in {c['compile_seconds']:.0f} s with {c['compiler']} for this CPU"
        typer.echo(
            f"{fmt}: {path}  (re-loaded in {c['checked_with']}; batches "
            f"{'/'.join(map(str, c['batch_sizes']))} {check}, {c['seconds']:.1f} s{preset})"
        )
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"manifest: {result.run_dir / MANIFEST}")


app.command("export")(
    _DerivedCommand(
        _export,
        lambda: [
            _keyword(name, Annotated[Optional[option.type], Opt(help=registry.option_help(option, formats))])
            for name, (option, formats) in registry.writer_options().items()
        ],
        format=_formats_option,
    )
)


@app.command()
def verify(
    run: Run = None,
    runtime: Runtimes = None,
    device: Devices = None,
    format: Formats = None,
    limit: LimitTest = None,
    data_dir: DataDir = None,
    atol: Annotated[
        Optional[float], Opt(help="fp32 files: |logit difference| allowed at any magnitude [1e-4].")
    ] = None,
    rtol: Annotated[
        Optional[float], Opt(help="fp32 files: plus this fraction of the image's largest |logit| [1e-5].")
    ] = None,
    fp32_min_agreement: Annotated[Optional[float], Opt(help="fp32 files: min top-1 agreement, percent [99.9].")] = None,
    fp32_max_acc_delta: Annotated[
        Optional[float], Opt(help="fp32 files: max accuracy difference, points [0.1].")
    ] = None,
    max_acc_drop: Annotated[Optional[float], Opt(help="INT8/fp16 files: max accuracy drop, points [0.5].")] = None,
    min_agreement: Annotated[
        Optional[float], Opt(help="INT8/fp16 files: min top-1 agreement with fp32, percent [97].")
    ] = None,
    fp16_max_rel: Annotated[Optional[float], Opt(help="fp16 files: max |Δlogit| / logit scale [0.03].")] = None,
    bf16_mean_rel: Annotated[Optional[float], Opt(help="bf16 autocast: mean |Δlogit| / logit scale [0.02].")] = None,
    int8_mean_rel: Annotated[Optional[float], Opt(help="INT8 files: mean |Δlogit| / logit scale [0.2].")] = None,
    allow_modified: AllowModified = False,
    batch_size: Annotated[Optional[int], Opt(help="Images per batch [500].")] = None,
    threads: Threads = None,
    model: TrustModel = None,
    wide: Wide = False,
):
    """Check every exported file x runtime x device against eager fp32 CPU on the test set; exit 1 on a failure."""
    from rich.console import Console
    from rich.table import Table

    from toolkit.run.folder import PARITY, PARITY_MD
    from toolkit.verify.parity import Thresholds
    from toolkit.verify.parity import verify as run_verify
    from toolkit.verify.parity_files import COMPACT_COLUMNS, PARITY_COLUMNS, compact_rows, parity_rows

    with user_errors():
        result = run_verify(
            _run_or_newest(run),
            runtimes=runtime,
            devices=device,
            formats=format,
            limit=limit,
            data_dir=data_dir,
            thresholds=Thresholds(
                **_given(
                    atol=atol,
                    rtol=rtol,
                    fp32_min_agreement=fp32_min_agreement,
                    fp32_max_acc_delta=fp32_max_acc_delta,
                    max_acc_drop=max_acc_drop,
                    min_agreement=min_agreement,
                    fp16_max_rel=fp16_max_rel,
                    bf16_mean_rel=bf16_mean_rel,
                    int8_mean_rel=int8_mean_rel,
                )
            ),
            model=model,
            allow_modified=allow_modified,
            **_given(batch_size=batch_size, threads=threads),
        )
    title = f"{result.model}: {result.samples} test images"
    if wide:
        table = Table(*PARITY_COLUMNS, title=title)
        rows = parity_rows(result)
    else:
        table = Table(title=title, box=None, pad_edge=False)
        for c in COMPACT_COLUMNS:
            table.add_column(c, no_wrap=c != "target", overflow="fold")
        rows = compact_rows(result)
    for row in rows:
        table.add_row(*row)
    Console(width=200 if wide else TERMINAL_COLUMNS).print(table)
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {result.run_dir / PARITY} and {result.run_dir / PARITY_MD}")
    if not wide:
        typer.echo(
            f"every figure: {result.run_dir / PARITY_MD} (or --wide); `toolkit report {result.run_dir}` draws it"
        )
    if not result:
        for line in result.failures:
            typer.echo(line, err=True)
        raise typer.Exit(1)


@app.command()
def predict(
    images: Annotated[list[str], typer.Argument(help="Image files or folders of them (PNG, JPEG, ...).")],
    run: Annotated[Optional[str], Opt(help="Run folder [the newest trained run in artifacts/].")] = None,
    runtime: Annotated[
        str,
        Opt(help=f"auto | {' | '.join(RUNTIMES)} [auto: bench's verified pick, else onnxruntime]."),
    ] = "auto",
    format: Annotated[
        Optional[str], Opt(help="File to load, by format, e.g. onnx-int8 [the runtime's fp32 file].")
    ] = None,
    top_k: Annotated[int, Opt(help="Classes to show per image.")] = 3,
    json_lines: Annotated[bool, Opt("--json", help="One JSON object per image on stdout.")] = False,
    threads: Threads = None,
    allow_modified: AllowModified = False,
    model: TrustModel = None,
):
    """Classify images with an exported model; exit 1 if any file could not be classified."""
    from toolkit.predict import predict as run_predict
    from toolkit.predict import to_json_lines

    with user_errors():
        result = run_predict(
            images,
            run_dir=_run_or_newest(run, err=True),  # stdout is the answers
            runtime=runtime,
            format=format,
            top_k=top_k,
            threads=threads,
            allow_modified=allow_modified,
            model=model,
        )
    if result.chosen:
        typer.echo(f"runtime auto: {result.chosen}", err=True)
    if result.modified:
        typer.echo(f"warning: {result.modified}; answering from it (--allow-modified)", err=True)
    if json_lines:
        sys.stdout.write(to_json_lines(result))
    else:
        for p in result.predictions:
            typer.echo(f"{p.file}: " + ", ".join(f"{c} {100 * pr:.1f}%" for c, pr in p.top))
    for line in result.failures:
        typer.echo(f"error: {line}", err=True)
    if not result:
        raise typer.Exit(1)


@app.command()
def sweep(
    model: Annotated[str, typer.Argument(help="Registry model to tune (see `toolkit models`).")],
    trials: Annotated[int, Opt(help="Trials the study should hold (re-running continues it).")] = 16,
    space: Annotated[Optional[str], Opt(help="TOML/JSON search space [a default per recipe].")] = None,
    epochs: Annotated[Optional[float], Opt(help="Epochs per trial [recipe].")] = None,
    val_size: Annotated[int, Opt(help="Training images held out for scoring (stratified).")] = 5000,
    study: Annotated[Optional[str], Opt(help="Study name [MODEL-sweep].")] = None,
    storage: Annotated[
        Optional[str], Opt(help=f"Database URL Optuna accepts [sqlite in OUT/{SWEEPS}/STUDY/{STUDY_DB}].")
    ] = None,
    pruner: Annotated[str, Opt(help="median | hyperband | none.")] = "median",
    sampler: Annotated[str, Opt(help="tpe | random (seeded with --seed).")] = "tpe",
    timeout: Annotated[Optional[float], Opt(help="Stop starting trials after S seconds.")] = None,
    n_jobs: Annotated[int, Opt(help="Trials in parallel in this process.")] = 1,
    seed: Annotated[int, Opt(help="Seed of every trial's training and of the first worker's sampler.")] = 0,
    grace: Annotated[
        Optional[float],
        Opt(help="Seconds a running trial's worker may be silent before its trial is failed and re-run [120]."),
    ] = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    limit_train: LimitTrain = None,
    device: Device = None,
    out: Annotated[str, Opt(help="Artifacts folder; trials go to OUT/sweeps/STUDY/trial-K.")] = DEFAULT_ROOT,
):
    """Tune a model's hyperparameters on Optuna; trials are scored on validation, the best one tested once."""
    from toolkit.experiments.sweep import sweep as run_sweep

    options = _given(dataset=dataset, data_dir=data_dir, limit_train=limit_train, device=device, grace=grace)
    with user_errors():
        s = run_sweep(
            model,
            trials=trials,
            space=space,
            epochs=epochs,
            val_size=val_size,
            study=study,
            storage=storage,
            pruner=pruner,
            sampler=sampler,
            timeout=timeout,
            n_jobs=n_jobs,
            seed=seed,
            out=out,
            progress=typer.echo,
            **options,
        )
    retried = f" ({s['retried']} interrupted or lost, run again)" if s["retried"] else ""
    typer.echo(f"{s['trials']} trials: {s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed{retried}")
    if s["best"]:
        b = s["best"]
        typer.echo(f"best: trial {b['number']}, val {b['val_acc']:.2f}%, test {b['test_acc']:.2f}% (measured once)")
    typer.echo(f"wrote {Path(out) / SWEEPS / s['study']}/{SWEEP_MD}, {SWEEP}, {BEST_TOML}")


@app.command()
def runs(
    compare: Annotated[
        Optional[list[str]], typer.Argument(help="Two run folders to compare side by side [list all runs].")
    ] = None,
    out: Annotated[str, Opt(help="Folder holding the runs.")] = DEFAULT_ROOT,
    sort: Annotated[str, Opt(help="date | model | test_acc | best_test_acc | val_acc | img_per_s | run.")] = "date",
    json_lines: Annotated[bool, Opt("--json", help="One JSON object per run on stdout.")] = False,
    wide: Wide = False,
):
    """A table of every training run under OUT; `toolkit runs A B` compares two (config, figures, curves)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from toolkit.experiments import compare_runs, list_runs
    from toolkit.models.external import short_name

    if compare:
        with user_errors():
            if len(compare) != 2:
                raise ToolkitError(f"toolkit runs compares two run folders, got {len(compare)}")
            a, b = (Path(c) for c in compare)
            png = Path(out) / f"compare-{a.name}-vs-{b.name}.png"
            Path(out).mkdir(parents=True, exist_ok=True)
            result = compare_runs(a, b, png)
        if json_lines:
            sys.stdout.write(json.dumps(result) + "\n")
            return
        for key, (va, vb) in result["config_differences"].items():
            typer.echo(f"{key}: {va} | {vb}")
        for path, r in result["figures"].items():
            typer.echo(
                f"{path}: final test {r['test_acc']}%, best {r['best_test_acc']}%, val {r['val_acc']}, "
                f"{r['epochs']} epochs, {r['img_per_s'] and round(r['img_per_s'])} img/s"
            )
        typer.echo(f"wrote {result['png']}")
        return
    with user_errors():
        rows, notes = list_runs(out, sort)
    if json_lines:
        for r in rows:
            sys.stdout.write(json.dumps(r.to_dict()) + "\n")
    else:

        def fmt(v, spec="") -> str:
            return "-" if v is None else format(v, spec)

        # Compact: what tells runs apart at a glance; --wide adds state, best and val accuracy, device, date, exports.
        columns = ("run", "model", "epochs", "test %", "Δ ref", "precision", "img/s", "verify")
        if wide:
            columns = ("run", "state", "model", "data", "epochs", "test %", "best %", "val %", "Δ ref pt", "device",
                       "precision", "img/s", "date", "exports", "verify")  # fmt: skip
        table = Table(title=f"{len(rows)} runs under {out}", box=None, pad_edge=False)
        # Names fold onto a second line; figures never do; the run's name, what a user types next, folds last.
        run_width = min(40, max((len(r.run) for r in rows), default=3))
        for c in columns:
            table.add_column(
                c,
                overflow="fold",
                no_wrap=c not in ("run", "model", "precision"),
                min_width=run_width if c == "run" else None,
            )
        for r in rows:
            cells = {
                "run": r.run, "state": r.state, "model": fmt(r.model and (r.model if wide else short_name(r.model))), "data": fmt(r.dataset), "epochs": fmt(r.epochs),
                "test %": fmt(r.test_acc, ".2f"), "best %": fmt(r.best_test_acc, ".2f"), "val %": fmt(r.val_acc, ".2f"),
                "Δ ref pt": fmt(r.delta_vs_reference, "+.2f"), "Δ ref": fmt(r.delta_vs_reference, "+.2f"), "device": fmt(r.device), "precision": fmt(r.precision),
                "img/s": fmt(r.img_per_s, ",.0f"), "date": fmt(r.date), "exports": str(len(r.exports)),
                "verify": fmt(r.verify),
            }  # fmt: skip
            if r.state != "finished" and not wide:
                cells["epochs"] += " (stopped)"
            table.add_row(*(cells[c] for c in columns))
        Console(width=220 if wide else TERMINAL_COLUMNS).print(table)
        if not wide:
            typer.echo(f"every column: --wide or --json; `toolkit report {out}` draws curves and comparisons")
    for note in notes:
        typer.echo(f"note: {note}", err=True)


@app.command()
def report(
    run: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="RUN...", help="Run folders, or folders that hold runs [artifacts]."),
    ] = None,
    out: Annotated[Optional[str], Opt(help=f"The HTML file to write [{REPORT_HTML} in the first folder].")] = None,
    open_page: Annotated[bool, Opt("--open", help="Open the page in the default browser.")] = False,
):
    """One self-contained HTML page (opens offline) over what the other commands wrote: runs, curves,
    reproductions, sweeps, parity, speed and which file to ship."""
    from toolkit.report import build_report

    with user_errors():
        result = build_report(run, out)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {result.path}: {len(result.sections)} sections ({', '.join(result.sections)})")
    if open_page:
        import webbrowser

        if not webbrowser.open(result.path.resolve().as_uri()):
            typer.echo(f"no browser found here; open {result.path} in one", err=True)


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ToolkitError(f"{option} takes comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise ToolkitError(f"{option} takes comma-separated positive integers, got {text!r}")
    return values


@app.command()
def bench(
    run: Run = None,
    model: Annotated[
        Optional[str],
        Opt(
            help="Alone: benchmark a fresh (untrained) model of this name or factory; with RUN: the run's "
            "factory, named to allow importing it."
        ),
    ] = None,
    runtime: Runtimes = None,
    format: Formats = None,
    device: Devices = None,
    batch_sizes: Annotated[Optional[str], Opt(help="Comma-separated inference batch sizes [1,32,256].")] = None,
    threads: Threads = None,
    rounds: Annotated[Optional[int], Opt(help="Timed calls per case [30].")] = None,
    warmup: Annotated[Optional[int], Opt(help="Untimed calls per case after the first [5].")] = None,
    budget: Annotated[Optional[float], Opt(help="Max seconds of timed calls per case [15].")] = None,
    variants: Annotated[
        Optional[bool],
        Opt("--variants/--no-variants", help="Also each runtime's variants: ORT opt levels, channels_last, bf16 [no]."),
    ] = None,
    train: Annotated[Optional[bool], Opt("--train/--no-train", help="Also time training steps [yes].")] = None,
    train_steps: Annotated[Optional[int], Opt(help="Timed training steps per case [10].")] = None,
    out: Annotated[str, Opt(help="Artifacts folder (for --model runs and the default run).")] = DEFAULT_ROOT,
    time_to_accuracy: Annotated[
        Optional[float],
        Opt(help="Instead: train --model until this test accuracy (0.94 or 94) and report the seconds it took."),
    ] = None,
    data_dir: DataDir = None,
    dataset: Dataset = None,
    epochs: Annotated[Optional[int], Opt(help="Time-to-accuracy: epoch budget [recipe].")] = None,
    limit_train: LimitTrain = None,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile: Compile = None,
):
    """Time inference per runtime x device x batch and training per device; writes bench.json/.md/.png.

    With --time-to-accuracy, trains --model (default fast-cnn) DAWNBench-style instead and writes tta.json.
    """
    if time_to_accuracy is not None:
        overrides = _given(data_dir=data_dir, dataset=dataset, epochs=epochs, limit_train=limit_train, amp=amp,
                           channels_last=channels_last, compile=compile, out=out)  # fmt: skip
        _time_to_accuracy(time_to_accuracy, model or "fast-cnn", device, overrides)
        return
    from rich.console import Console
    from rich.table import Table

    from toolkit.bench.bench_files import INFER_COLUMNS, TRAIN_COLUMNS, inference_rows, training_rows
    from toolkit.bench.run import BenchConfig, run_bench

    with user_errors():
        cfg = BenchConfig(
            runtimes=tuple(runtime) if runtime else None,
            formats=tuple(registry.split_names(format)) if format else None,
            devices=tuple(device) if device else None,
            **_given(
                batch_sizes=_int_list(batch_sizes, "--batch-sizes") if batch_sizes is not None else None,
                threads=threads,
                rounds=rounds,
                warmup=warmup,
                budget_s=budget,
                variants=variants,
                train=train,
                train_steps=train_steps,
            ),
        )
        result = run_bench(run, model=model, config=cfg, out=out, progress=typer.echo)
    console = Console(width=200)
    table = Table(*INFER_COLUMNS, title=f"{result['model']} inference ({result['machine']['cpu_model']})")
    for row in inference_rows(result):
        table.add_row(*row)
    console.print(table)
    if result["training"]:
        table = Table(*TRAIN_COLUMNS, title="training steps")
        for row in training_rows(result):
            table.add_row(*row)
        console.print(table)
    for note in result["notes"]:
        typer.echo(f"note: {note}")
    for line in result["disturbed"]:
        typer.echo(f"warning: disturbed measurement, {line}: the peak was measured on a busy machine", err=True)
    typer.echo(result["recommendation"]["text"])
    typer.echo("wrote " + ", ".join(result["files"]))


def _time_to_accuracy(target: float, model: str, device: list[str] | None, overrides: dict) -> None:
    """bench --time-to-accuracy: the experiment (experiments/time_to_accuracy.py) trains; this prints it."""
    from toolkit.experiments.time_to_accuracy import time_to_accuracy
    from toolkit.run.folder import TIME_TO_ACCURACY
    from toolkit.train.progress import PlainReporter

    with user_errors():
        if device and len(device) > 1:
            raise ToolkitError("--time-to-accuracy takes one --device")
        if device:
            overrides["device"] = device[0]
        result = time_to_accuracy(target, model=model, reporter=PlainReporter(), write=True, **overrides)
    tta = result["time_to_accuracy_s"]
    verdict = (
        f"reached {result['target_accuracy']:.2f}% in {tta:.1f} s of training over {result['epochs']} epochs"
        if result["reached"]
        else f"did not reach {result['target_accuracy']:.2f}% in {result['epochs']} epochs "
        f"(final {result['final_test_acc']:.2f}%, {result['train_seconds']:.1f} s of training)"
    )
    typer.echo(
        f"{model} on {result['device']}: {verdict}; evaluation {result['eval_seconds']:.1f} s and warm-up "
        f"{result['warmup_seconds']:.1f} s not counted -> {result['run_dir']}/{TIME_TO_ACCURACY}"
    )


def main() -> None:
    app()
