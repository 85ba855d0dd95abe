"""The ``nbrisk`` command line (Typer). Each command is a thin shell over a function in its package.

Imports are lazy so that ``nbrisk --help`` is fast and a command loads only what it needs. A user mistake raises
:class:`nbrisk.core.NbriskError`, printed as one line with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nbrisk.core import NbriskError
from nbrisk.training.commands import DEFAULT_HORIZONS_TEXT

app = typer.Typer(
    help="nbrisk: competing-risks (relapse vs TRM) risk models for neuroblastoma allo-HSCT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Cohort files: generate, validate, describe.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
app.add_typer(data_app, name="data")
bento_app = typer.Typer(help="Deployable units: a Bento pinning one registered model version.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(bento_app, name="bento")


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NbriskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@data_app.command("synth")
def data_synth(
    n: Annotated[int, typer.Option("--n", help="number of patients", min=1)] = 500,
    seed: Annotated[int, typer.Option(help="random seed (same seed and n give byte-identical output)")] = 0,
    preset: Annotated[str, typer.Option(help="base | historical | optimistic")] = "base",
    out: Annotated[Path, typer.Option(help="output file (.csv or .parquet)")] = Path("cohort.csv"),
):
    """Write a synthetic cohort in the record contract (outcomes included)."""
    from nbrisk.features import commands

    _run(commands.synth, n=n, seed=seed, preset=preset, out=out)


@data_app.command("validate")
def data_validate(file: Annotated[Path, typer.Argument(help="CSV or Parquet cohort file")]):
    """Exit 0 if every row is valid; else exit 1 and a table of every problem."""
    from nbrisk.features import commands

    code = _run(commands.validate, file)
    raise typer.Exit(code or 0)


@data_app.command("describe")
def data_describe(file: Annotated[Path, typer.Argument(help="CSV or Parquet cohort file")]):
    """Table 1, event counts and Aalen–Johansen CIFs of relapse and TRM at 1/2/3/5 years."""
    from nbrisk.features import commands

    _run(commands.describe, file)


@app.command("train")
def train(
    data: Annotated[Path | None, typer.Option(help="cohort file; default: the embedded synthetic cohort")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file or packaged config name (default, quick)")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name")] = "nbrisk",
    cluster: Annotated[
        str | None,
        typer.Option(help="run every fit on a Dask cluster: scheduler address (tcp://host:8786) or 'local'"),
    ] = None,
):
    """Fit every configured model with the configured validation, log to MLflow, register, print a leaderboard."""
    from nbrisk.training import commands

    _run(commands.train, data=data, config=config, experiment=experiment, cluster=cluster)


@app.command("compare")
def compare(experiment: Annotated[str, typer.Option(help="MLflow experiment name")] = "nbrisk"):
    """Leaderboard from MLflow: metrics with 95% CIs, best first, on the same folds."""
    from nbrisk.training import commands

    _run(commands.compare, experiment=experiment)


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="registered model name (nbrisk)")],
    version: Annotated[str, typer.Argument(help="model version")],
    alias: Annotated[str, typer.Option(help="alias to move")] = "champion",
):
    """Move an alias after checking the promotion gates; refuses with reasons otherwise."""
    from nbrisk.training import commands

    _run(commands.promote, name=name, version=version, alias=alias)


@app.command("predict")
def predict(
    file: Annotated[Path, typer.Argument(help="patients (CSV/Parquet/JSON) in the record contract")],
    out: Annotated[Path, typer.Option(help="output long CSV")],
    model: Annotated[str | None, typer.Option(help="model URI; default models:/nbrisk@champion")] = None,
    horizons: Annotated[str, typer.Option(help="comma-separated months")] = DEFAULT_HORIZONS_TEXT,
):
    """Score patients into a long CSV (estimates and 95% intervals per horizon, risk group)."""
    from nbrisk.training import commands

    _run(commands.predict, file=file, out=out, model=model, horizons=horizons)


@app.command("report")
def report(
    patient: Annotated[Path | None, typer.Argument(help="PATIENT.json (one record)")] = None,
    out: Annotated[Path, typer.Option(help="FILE.pdf or FILE.html")] = Path("report.pdf"),
    model: Annotated[str | None, typer.Option(help="model URI or registered version")] = None,
):
    """The tumor-board report for one patient, or with --model and no patient the model report."""
    from nbrisk.reports import commands

    _run(commands.report, patient=patient, out=out, model=model)


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="TCP port")] = 3000,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
):
    """Run the HTTP service (BentoML)."""
    from nbrisk.serving import commands

    _run(commands.serve, port=port, host=host)


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="key name (who uses it)")]):
    """Create an API key and print it once (only its hash is stored)."""
    from nbrisk.serving import commands

    _run(commands.keys_create, name=name)


@keys_app.command("list")
def keys_list():
    """List API keys (names, created, revoked; never the keys)."""
    from nbrisk.serving import commands

    _run(commands.keys_list)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="key name")]):
    """Revoke an API key."""
    from nbrisk.serving import commands

    _run(commands.keys_revoke, name=name)


@bento_app.command("build")
def bento_build(
    model: Annotated[
        str | None, typer.Option(help="registered model: models:/NAME@ALIAS or models:/NAME/VERSION")
    ] = None,
    wheel: Annotated[
        Path | None, typer.Option(help="a built nbrisk wheel (default: build one from the checkout)")
    ] = None,
):
    """Build a Bento of the service that serves ONE registered model version (default: the champion's), copied in."""
    from nbrisk.serving.bento import build_bento

    tag = _run(build_bento, model_uri=model, wheel=wheel)
    typer.echo(
        f"built Bento {tag}: serve it with `bentoml serve {tag}`, containerize with `bentoml containerize {tag}`"
    )


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
