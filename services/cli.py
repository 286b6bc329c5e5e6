"""``uq``: the command line of the Semantic Uncertainty Runtime (installed by ./start.sh and ./test.sh).

``uq eval``       run a labelled QA file through the system and report how well each score, alert
                  rule and the risk level tell wrong answers from right ones (docs/evaluation.md);
``uq calibrate``  fit a model's calibration profile from evaluation runs (docs/evaluation.md).

Built on Typer (Click underneath): typed options, ``--help`` on every command, shell completion.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="uq",
    help="Semantic Uncertainty Runtime: evaluate and calibrate the uncertainty signals of a model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Semantic Uncertainty Runtime: evaluate and calibrate the uncertainty signals of a model."""


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Argument(help="QA file, JSON Lines: {question, answer[]} or {prompt, reference}.")],
    out: Annotated[Path, typer.Option(help="Folder for runs.jsonl, report.md/json and plots.")] = Path(
        "data/eval/latest"
    ),
    url: Annotated[
        str, typer.Option(help="Gateway of the running system (ignored with --local).", envvar="UQ_GATEWAY_URL")
    ] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str | None, typer.Option(help="API key, when the gateway asks for one.", envvar="UQ_API_KEY")
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run the generator's engine, auditor and alerter in this process.")
    ] = False,
    model: Annotated[str | None, typer.Option(help="Model; default: the system's default model.")] = None,
    style: Annotated[
        str, typer.Option(help="How items become prompts: fewshot, chat or plain (as they are, no stop).")
    ] = "fewshot",
    max_tokens: Annotated[int, typer.Option(min=1, max=4096, help="Tokens per answer.")] = 16,
    temperature: Annotated[float, typer.Option(min=0.0, max=5.0, help="0 = greedy.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (with temperature > 0).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    verify: Annotated[
        int,
        typer.Option(min=0, max=20, help="Verification samples per item; their agreement is scored as verify.*."),
    ] = 0,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Do not generate: report on the runs already in --out.")
    ] = False,
    profile: Annotated[
        Path | None, typer.Option(help="Calibration profile to score P(wrong) with (default: the model's own).")
    ] = None,
) -> None:
    """Run DATA through the system and report AUROC, PRR, AUPRC, alert and risk rates, and calibration."""
    from services.evaluation import qa, report, runner
    from services.evaluation.pipeline import ApiPipeline, LocalPipeline, PipelineError

    if style not in qa.PROMPT_STYLES:
        _fail(f"--style must be one of {', '.join(qa.PROMPT_STYLES)}, not {style!r}")
    try:
        items = qa.load(data, limit, labelled=False)
    except qa.QAFileError as exc:
        _fail(str(exc))
    if not report_only:
        try:
            pipeline = LocalPipeline(model) if local else ApiPipeline(url, api_key, model)
        except PipelineError as exc:
            _fail(str(exc))
        config = runner.RunConfig(
            data=str(data),
            model=pipeline.model,
            mode="local" if local else "api",
            style=style,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            verify=verify,
            engine=getattr(pipeline, "engine_name", None),
        )
        started = time.monotonic()
        correct = [0]

        def progress(n: int, total: int, record: dict[str, Any]) -> None:
            correct[0] += bool(record["correct"])
            rate = n / max(time.monotonic() - started, 1e-9)
            eta = (total - n) / rate if rate else 0.0
            line = f"\r[{n}/{total}] {correct[0] / n:6.1%} correct · {rate:.2f} items/s · ETA {eta / 60:5.1f} min"
            sys.stderr.write(line)
            sys.stderr.flush()

        try:
            runner.run(items, pipeline, config, out, progress)
        except (runner.RunFolderError, PipelineError) as exc:
            _fail(str(exc))
        finally:
            pipeline.close()
            sys.stderr.write("\n")
    try:
        result = report.build(out, [i.id for i in items], profile=profile)
    except FileNotFoundError as exc:
        _fail(str(exc))
    report.write(out, result)
    typer.echo(report.console_summary(result))
    typer.echo(f"report: {out / 'report.md'}")


@app.command("calibrate")
def calibrate_command(
    out: Annotated[Path, typer.Option(help="Profile file to write (JSON).")],
    reference_prompts: Annotated[
        Path, typer.Option(help="Ordinary prompts, JSON Lines {prompt}: what is usual for the model.")
    ] = Path("services/evaluation/datasets/ordinary-prompts.jsonl"),
    labelled: Annotated[
        list[Path] | None,
        typer.Option(help="uq eval folder of a QA dev split (repeatable): fits P(wrong). Test splits are refused."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model; default: the generator's default.")] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Other name the model goes by (repeatable).")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Generations per reference prompt.")] = 3,
    temperature: Annotated[float, typer.Option(min=0.0, max=5.0, help="Sampling temperature of the reference.")] = 0.7,
    max_tokens: Annotated[int, typer.Option(min=1, max=4096, help="Tokens per reference generation.")] = 48,
    reference_runs: Annotated[
        Path,
        typer.Option(help="Folder that keeps the reference generations; reused when its settings match."),
    ] = Path("data/calibrate/reference"),
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe",
            help="With labelled runs: fit a hidden-state probe (transformers models) as a P(wrong) feature.",
        ),
    ] = True,
) -> None:
    """Fit a calibration profile: token-metric quantiles on ordinary prompts, P(wrong) on labelled QA."""
    import json

    from services.evaluation import calibrate, qa

    try:
        prompts = [i.prompt or i.question or "" for i in qa.load(reference_prompts, labelled=False)]
        calibrate.check_labelled(labelled or [])
    except (qa.QAFileError, calibrate.CalibrationError) as exc:
        _fail(str(exc))

    def progress(n: int, total: int) -> None:
        sys.stderr.write(f"\r[{n}/{total}] reference generations")
        sys.stderr.flush()

    name, sessions = calibrate.generate_reference(
        prompts,
        model=model,
        seeds=seeds,
        temperature=temperature,
        max_tokens=max_tokens,
        progress=progress,
        folder=reference_runs,
    )
    sys.stderr.write("\n")
    info = {"prompts": str(reference_prompts), "seeds": seeds, "temperature": temperature, "max_tokens": max_tokens}
    try:

        def fit_progress(what: str, n: int, total: int) -> None:
            sys.stderr.write(f"\r[{n}/{total}] {what}: hidden states of the labelled answers")
            sys.stderr.flush()

        profile = calibrate.build_profile(
            name,
            alias or [],
            sessions,
            info,
            labelled or [],
            probe=probe,
            prompts=prompts,
            engine_model=model,
            progress=fit_progress,
        )
        sys.stderr.write("\n")
    except calibrate.CalibrationError as exc:
        _fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    pw = profile["p_wrong"]
    rates = ", ".join(f"{level} {share:.1%}" for level, share in profile["risk_rates"].items())
    typer.echo(
        f"wrote {out}: {profile['fitted_on']['reference']['tokens']} reference tokens"
        + (f", P(wrong) fitted on {pw['fitted_on']['items']} labelled answers" if pw else ", no labelled data")
        + (f", probe on layer {profile['probe']['layer']}" if profile.get("probe") else "")
        + f"; peak risk of the reference sessions: {rates}"
    )


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
