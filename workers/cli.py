"""Worker-side subcommands of ``blurq`` (loaded lazily by the producer's command group).

``blurq worker`` runs a Celery worker; ``blurq blur`` and ``blurq matte`` run the image stages on
local files, without the queue, for trying settings and evaluating mattes; ``blurq eval matting``
scores a model's mattes against ground truth.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from infra import heartbeat
from infra.celery_app import WEBHOOK_QUEUE, WORKER_QUEUES
from infra.errors import BlurqError
from infra.models import ModelStore
from infra.params import BlurParams, cli_option
from infra.settings import get_settings
from workers.gpu import placement

if TYPE_CHECKING:
    from workers.matting import Matting


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Child processes (without --gpu).",
)
@click.option(
    "--queues",
    "-Q",
    default=",".join(WORKER_QUEUES),
    show_default=True,
    help="Queues in priority order.",
)
@click.option("--name", "-n", default="blurq@%h", show_default=True, help="Worker node name.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@placement.options
@heartbeat.option
def worker(
    concurrency: int,
    queues: str,
    name: str,
    loglevel: str,
    gpu: bool,
    processes_per_gpu: int | None,
    heartbeat_file: Path | None,
) -> None:
    """Run a Celery worker (prefork; settings from BLURQ_* variables) and the maintenance sweep.

    A worker of the webhooks queue alone loads no image code (nor onnxruntime), so the webhook
    sender runs from the producer's image. With --gpu it runs one worker per GPU instead
    (workers.gpu.placement); exit status 1 if any failed, 2 without a GPU.

    \b
    Examples:
      blurq worker --concurrency 2
      blurq worker --gpu --processes-per-gpu 4
    """
    if gpu:
        sys.exit(placement.run(queues, loglevel, heartbeat_file, processes_per_gpu, click.echo))
    if processes_per_gpu is not None:
        raise click.UsageError("--processes-per-gpu goes with --gpu")
    import workers.webhooks  # registers the webhook task on the app
    from infra import sweeper
    from infra.celery_app import app

    if set(queues.split(",")) != {WEBHOOK_QUEUE}:
        import workers.tasks  # noqa: F401  (registers the image task: loads onnxruntime)
    if heartbeat_file is not None:
        heartbeat.install(heartbeat_file)
    sweeper.install(app)
    argv = [f"--concurrency={concurrency}", f"--queues={queues}", f"--hostname={name}"]
    argv += [f"--loglevel={loglevel}", "--pool=prefork", "--task-events", "--without-gossip"]
    app.worker_main(["worker", *argv])


def _matting(model: str) -> Callable[[NDArray[np.uint8]], NDArray[np.float32]]:
    return _model(model).predict


def _model(model: str) -> Matting:
    from workers.matting import Matting

    settings = get_settings()
    return Matting(model, ModelStore.from_settings(settings), threads=settings.onnx_threads)


def _files_and_out(out_help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The FILES argument and the --out folder of the commands that work on local files."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        out = click.option(
            "--out", "out_dir", required=True, type=click.Path(path_type=Path), help=out_help
        )
        files = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
        return files(out(command))

    return decorate


def _each(
    files: tuple[Path, ...],
    work: Callable[[Path], object],
    failed: Callable[[Path, Exception], str] | None = None,
) -> None:
    """Run work on every file and print what it returns; report failures one line each (on
    stderr, or the line failed gives on stdout) and exit 1 if any failed."""
    failures = 0
    for path in files:
        try:
            click.echo(work(path))
        except (BlurqError, ValueError, OSError) as error:
            failures += 1
            if failed is None:
                click.echo(f"{path}: {error}", err=True)
            else:
                click.echo(failed(path, error))
    if failures:
        sys.exit(1)


def _read(path: Path) -> NDArray[np.uint8]:
    from workers.decode import decode

    return decode(path.read_bytes(), max_pixels=get_settings().max_input_pixels).rgb


def _depth_for(path: Path, given: Path, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """The depth map of one input: the given file, or <stem>.png in the given folder."""
    from workers.bokeh import decode_depth

    source = given / f"{path.stem}.png" if given.is_dir() else given
    if not source.is_file():
        raise ValueError(f"no depth map {source}")
    limit = get_settings().max_input_pixels
    return decode_depth(source.read_bytes(), (shape[0], shape[1]), max_pixels=limit)


def _matte_file(path: Path) -> Callable[[NDArray[np.uint8]], NDArray[np.float32]]:
    """A stand-in for matting that returns a given matte, read as the pipeline reads brought
    mattes (8 or 16 bit, the photo's size, the photos' pixel limit)."""
    from workers.own_matte import decode_matte

    def predict(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        limit = get_settings().max_input_pixels
        return decode_matte(path.read_bytes(), (rgb.shape[0], rgb.shape[1]), max_pixels=limit)

    return predict


@click.command()
@_files_and_out("Folder for the results (one per input, named after its stem).")
@cli_option("strength")
@cli_option("strength_reference")
@cli_option("aperture")
@cli_option("rotation")
@click.option(
    "--matte",
    "matte_path",
    type=click.Path(path_type=Path),
    help="Use this matte PNG (input's size, white = subject) instead of computing one.",
)
@click.option(
    "--depth",
    "depth_path",
    type=click.Path(exists=True, path_type=Path),
    help="A depth map (white = far, black = the subject's plane), or a folder of them named "
    "after the inputs' stems; default: a proxy from the distance to the subject.",
)
@cli_option("model")
@cli_option("format", "--format", "fmt")
@cli_option("quality")
@cli_option("background")
@cli_option("save_matte")
def blur(
    files: tuple[Path, ...],
    out_dir: Path,
    matte_path: Path | None,
    depth_path: Path | None,
    fmt: str,
    **options: Any,
) -> None:
    """Blur the background of local photos (no queue), or set them on a plain background.

    \b
    Examples:
      blurq blur shoe.jpg --out out/ --strength 60
      blurq blur shoe.jpg --out out/ --background white --save-matte
      blurq blur shoe.jpg --out out/ --background transparent --format png
    """
    try:
        params = BlurParams(format=fmt, **options)
    except BlurqError as error:
        raise click.UsageError(str(error)) from error
    predict = _matte_file(matte_path) if matte_path else _matting(params.model)
    if depth_path and depth_path.is_file() and len(files) > 1:
        raise click.UsageError("--depth FILE goes with one input; give a folder for several")
    out_dir.mkdir(parents=True, exist_ok=True)
    _each(files, lambda path: _blur_file(path, out_dir, params, predict, depth_path))


def _blur_file(
    path: Path,
    out_dir: Path,
    params: BlurParams,
    predict: Callable[[NDArray[np.uint8]], NDArray[np.float32]],
    depth_path: Path | None,
) -> Path:
    """Render one local photo into out_dir (and its matte beside it, when asked); the output."""
    from workers.backgrounds import matte_bytes
    from workers.decode import decode
    from workers.encode import encode, encode_matte, extension
    from workers.render import render

    image = decode(path.read_bytes(), max_pixels=get_settings().max_input_pixels)
    alpha = predict(image.rgb)
    depth = _depth_for(path, depth_path, image.rgb.shape[:2]) if depth_path else None
    result = render(image.rgb, alpha, params, depth)
    fmt = params.format
    data = encode(result, fmt=fmt, quality=params.quality, icc_profile=image.icc_profile)
    target = out_dir / f"{path.stem}.{extension(fmt)}"
    target.write_bytes(data)
    if params.save_matte:
        (out_dir / f"{path.stem}.matte.png").write_bytes(encode_matte(matte_bytes(alpha)))
    return target


@click.command()
@_files_and_out("Folder for the mattes (single-channel PNG, input's size, named after its stem).")
@cli_option("model")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per input, not just the path."
)
def matte(files: tuple[Path, ...], out_dir: Path, model: str, as_json: bool) -> None:
    """Compute subject mattes of local photos (no queue), each with its confidence.

    A matte whose confidence is low is flagged for review: the networks disagreed, a wide part
    of it is neither subject nor background (or was decided from colour alone), it is (nearly)
    empty, or it covers most of the frame's border. --json prints input, output, confidence,
    review and signals.

    \b
    Examples:
      blurq matte shoe.jpg --out mattes/
      blurq matte photos/*.jpg --out mattes/ --json > confidence.jsonl
    """
    matting = _model(model)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> str:
        alpha, confidence = matting.predict_with_confidence(_read(path))
        target = out_dir / f"{path.stem}.png"
        Image.fromarray(np.round(alpha * 255).astype(np.uint8)).save(target)
        record = {"input": str(path), "output": str(target), **confidence.as_dict()}
        return json.dumps(record) if as_json else str(target)

    def failed(path: Path, error: Exception) -> str:
        return json.dumps({"input": str(path), "output": None, "error": str(error)})

    _each(files, one, failed if as_json else None)


@click.group("eval")
def evaluate() -> None:
    """Measure quality against ground truth."""


@evaluate.command("matting")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@cli_option("model")
def evaluate_matting(folder: Path, model: str) -> None:
    """SAD/1000, MSE, Grad/1000 and confidence per image of FOLDER (image/ + alpha/), mean and
    median, and how well low confidence finds the worst mattes (Spearman's rank correlation)."""
    from workers.matting import evaluation

    matting = _model(model)
    matting.predict(np.zeros((64, 64, 3), np.uint8))  # load the sessions outside the timings
    try:
        scores = evaluation.evaluate(folder, matting.predict_with_confidence)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"model {model}, {len(scores)} images of {folder}")
    click.echo(evaluation.table(scores))
