"""A batch's manifest: one row per image (input, state, output, reason, seconds per stage), as
CSV or JSON lines, produced page by page so that a batch of any size streams in bounded memory.

    GET /v1/batches/{id}/manifest?format=csv|jsonl[&state=failed][&review=true]

CSV columns, in this order::

    image_id, input, state, output, error, deliveries, retried, confidence, review,
    started_at, finished_at, seconds, <one column per stage: get, decode, matting, ...>

(times in unix seconds, ``seconds`` the stages' sum, empty cells for what is not known; a text
cell that a spreadsheet would take for a formula starts with an apostrophe). A JSON line is the
image exactly as ``GET /v1/batches/{id}/images`` shows it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from infra.status import STAGES, ImageState, ImageStatus, StatusStore
from infra.tenants import split
from producer.http.routes import ERRORS, Api, BatchPath, Caller, _batch
from producer.http.schemas import Image

PAGE = 1_000
"""Image records read per Redis round trip."""
COLUMNS = (
    "image_id",
    "input",
    "state",
    "output",
    "error",
    "deliveries",
    "retried",
    "confidence",
    "review",
    "started_at",
    "finished_at",
    "seconds",
    *STAGES,
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make spreadsheet software read a CSV cell as a formula."""
Format = Literal["csv", "jsonl"]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def lines(
    store: StatusStore,
    batch_id: str,
    form: Format,
    *,
    state: ImageState | None = None,
    review: bool | None = None,
) -> Iterator[str]:
    """The manifest of a qualified batch id as text chunks (the CSV header first)."""
    if form == "csv":
        yield _csv([COLUMNS])
    position: int | None = 0
    while position is not None:
        images, position = store.image_page(
            batch_id, state=state, review=review, start=position, limit=PAGE, scan=PAGE
        )
        if form == "csv":
            yield _csv([row(image) for image in images])
        else:
            yield "".join(Image.of(image).model_dump_json() + "\n" for image in images)


def row(image: ImageStatus) -> tuple[object, ...]:
    """One image's CSV row (see COLUMNS)."""
    seconds = round(sum(image.timings.values()), 4) if image.timings else ""
    review = "" if image.review is None else json.dumps(image.review)
    return (
        image.image_id,
        image.input,
        image.state.value,
        image.output,
        image.error,
        image.deliveries,
        image.retried,
        "" if image.confidence is None else image.confidence,
        review,
        image.started_at or "",
        image.finished_at or "",
        seconds,
        *(image.timings.get(stage, "") for stage in STAGES),
    )


def _csv(rows: list[tuple[object, ...]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([tuple(map(inert, row)) for row in rows])
    return out.getvalue()


def inert(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula (an S3 key or an error is anyone's text:
    ``=HYPERLINK(...)``) gets a leading apostrophe, which spreadsheets show as text."""
    if isinstance(cell, str) and cell[:1] in _FORMULA_STARTS:
        return "'" + cell
    return cell


router = APIRouter(prefix="/v1", responses=ERRORS)


@router.get(
    "/batches/{batch_id}/manifest",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["jsonl"]: {}}}},
)
def manifest(
    batch_id: BatchPath,
    api: Api,
    who: Caller,
    form: Annotated[Format, Query(alias="format")] = "csv",
    state: ImageState | None = None,
    review: bool | None = None,
) -> StreamingResponse:
    """Every image of the batch (or those in one state, or flagged for review), streamed."""
    found = _batch(api, who, batch_id)
    return download(api.status_store, found.batch_id, form, state=state, review=review)


def download(
    store: StatusStore,
    batch_id: str,
    form: Format,
    *,
    state: ImageState | None = None,
    review: bool | None = None,
) -> StreamingResponse:
    """The streamed manifest of a qualified batch id, named for saving."""
    name = f"{split(batch_id)[1]}{'-' + state.value if state else ''}.{form}"
    return StreamingResponse(
        lines(store, batch_id, form, state=state, review=review),
        media_type=MEDIA_TYPES[form],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
