"""The render parameters of a batch, declared once: names, defaults, limits and help texts.

``BlurParams`` is the one declaration. Each field carries a ``Limit`` (its range, choices or
pattern, and a sentence of help) from which everything else is derived: the checks in
``BlurParams.__post_init__``, the click options of ``blurq submit`` and ``blurq blur``
(``cli_option``), and the HTTP API's ``Params`` schema (``producer.http.schemas``). Changing a
limit here changes all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

import click

from infra.errors import BlurqError, InvalidJob

MATTING_MODELS = ("fusion", "isnet", "u2netp")
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
"""File extension of each output format."""
OUTPUT_FORMATS = tuple(EXTENSIONS)
ALPHA_FORMATS = ("png", "webp")
"""The output formats that carry an alpha channel (for ``background="transparent"``)."""
BACKGROUND = r"^(blur|white|transparent|#[0-9a-fA-F]{6})$"
"""What a batch's ``background`` may be: blurred, white, transparent or a colour #rrggbb."""
STRENGTH_REFERENCES = ("frame", "subject")
"""What ``strength`` is a share of: the frame's long side, or the subject's size."""
_SINCE_FIRST_OUTPUTS = ("strength_reference", "background", "save_matte", "matte_suffix")
"""Fields added after outputs were first written: left out of the fingerprint at their default,
so that the output keys of jobs that do not use them (and so the outputs already stored) stay
the same."""


@dataclass(frozen=True)
class Limit:
    """What one render parameter accepts, and the help text that explains it."""

    help: str
    low: int | None = None
    high: int | None = None
    unit: str = ""  # said after the range in errors: "3..12 blades"
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # a full match, for text
    example: str = ""  # what a matching text looks like, for errors
    none: str | None = None  # the word the CLIs use for None (the field's default)

    def check(self, name: str, value: Any) -> None:
        """Raise InvalidJob unless value is allowed."""
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise InvalidJob(f"{name} must be {self.rule()}, got {value}")
        if self.choices and value not in self.choices:
            raise InvalidJob(f"{name} must be one of {self.choices}, got {value!r}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise InvalidJob(f"{name} must look like {self.example!r}, got {value!r}")

    def rule(self) -> str:
        """The allowed range in words, as errors say it: "1..100", "'disc' or 3..12 blades"."""
        text = f"{self.low:g}..{self.high:g}" + (f" {self.unit}" if self.unit else "")
        return f"{self.none!r} or {text}" if self.none else text


def _param(default: Any, limit: Limit) -> Any:
    return field(default=default, metadata={"limit": limit})


@dataclass(frozen=True)
class BlurParams:
    """How to render: identical for every image of a batch."""

    strength: int = _param(
        30,
        Limit(
            "Blur strength: the radius at infinity is strength% of 4.5% of the long side.",
            low=1,
            high=100,
        ),
    )
    strength_reference: str = _param(
        "frame",
        Limit(
            "What the blur is sized to: frame (the long side) or subject (its size in the matte, "
            "so tight and loose crops of one sitter blur alike).",
            choices=STRENGTH_REFERENCES,
        ),
    )
    aperture: int | None = _param(
        None,
        Limit(
            "Aperture shape: a disc, or a polygon of that many blades.",
            low=3,
            high=12,
            unit="blades",
            none="disc",
        ),
    )
    rotation: float = _param(
        0.0,
        Limit(
            "Degrees a bladed aperture is turned, counter-clockwise.",
            low=-360,
            high=360,
            unit="degrees",
        ),
    )
    model: str = _param("fusion", Limit("Matting model.", choices=MATTING_MODELS))
    format: str = _param("jpeg", Limit("Output format.", choices=OUTPUT_FORMATS))
    quality: int = _param(92, Limit("JPEG/WebP quality.", low=1, high=100))
    depth_suffix: str | None = _param(
        None,
        Limit(
            "Each input's depth map is <key stem><suffix>, e.g. .depth.png (white = far); "
            "without it, depth comes from the distance to the subject.",
            pattern=r"^[A-Za-z0-9._-]{1,40}$",
            example=".depth.png",
        ),
    )
    background: str = _param(
        "blur",
        Limit(
            "What goes behind the subject: blur (the photo's own background, blurred), white, "
            "transparent (PNG/WebP only) or a colour #rrggbb.",
            pattern=BACKGROUND,
            example="white",
        ),
    )
    save_matte: bool = _param(
        False,
        Limit("Also write each output's matte as <output stem>.matte.png (8-bit grey)."),
    )
    matte_suffix: str | None = _param(
        None,
        Limit(
            "Each input's matte is <key stem><suffix>, e.g. .matte.png (white = subject, the "
            "input's size), used instead of a matting model.",
            pattern=r"^[A-Za-z0-9._-]{1,40}$",
            example=".matte.png",
        ),
    )

    def __post_init__(self) -> None:
        for one in fields(self):
            value = getattr(self, one.name)
            if value is not None or one.default is not None:  # None: "not given", when allowed
                limit(one).check(one.name.replace("_", " "), value)
        if not isinstance(self.save_matte, bool):
            raise InvalidJob(f"save matte must be true or false, got {self.save_matte!r}")
        if self.background == "transparent" and self.format not in ALPHA_FORMATS:
            raise InvalidJob(
                f"background transparent needs an output format with alpha {ALPHA_FORMATS}, "
                f"got {self.format!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlurParams:
        """Build from JSON data; unknown fields are an error, not ignored."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidJob(f"unknown parameters: {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise InvalidJob(f"bad parameters: {error}") from error

    def fingerprint(self) -> str:
        """A stable text of the parameters, part of the output key's hash.

        Fields added since outputs were first written count only when not at their default
        (``_SINCE_FIRST_OUTPUTS``): a job that does not use them keeps its output key.
        """
        data = asdict(self)
        for name in _SINCE_FIRST_OUTPUTS:
            if data[name] == BlurParams.__dataclass_fields__[name].default:
                del data[name]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def limit(param: Field[Any]) -> Limit:
    """The Limit declared on one of BlurParams' fields."""
    found: Limit = param.metadata["limit"]
    return found


def parse_aperture(text: str) -> int | None:
    """'disc' is None, a number is that many blades (3..12); InvalidJob for anything else."""
    spec = limit(BlurParams.__dataclass_fields__["aperture"])
    if text == spec.none:
        return None
    if not text.isdigit():
        raise InvalidJob(f"aperture must be {spec.rule()}, got {text!r}")
    spec.check("aperture", int(text))
    return int(text)


def cli_option(name: str, *flags: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one render parameter (``--name``, or flags) with its type and help."""
    param = BlurParams.__dataclass_fields__[name]
    spec = limit(param)
    declared = flags or (f"--{name.replace('_', '-')}",)
    options: dict[str, Any] = {"help": spec.help, "default": param.default}
    if spec.none is not None:  # a word stands for None: the callback parses the text
        options.update(default=spec.none, callback=_parse_aperture)
        options["help"] += f" Allowed: {spec.rule()}."
    elif isinstance(param.default, bool):
        options.update(is_flag=True, default=False)
    elif spec.choices:
        options["type"] = click.Choice(spec.choices)
    elif isinstance(param.default, float):
        options["type"] = click.FloatRange(spec.low, spec.high)
    elif isinstance(param.default, int):
        options["type"] = click.IntRange(spec.low, spec.high)
    shown = options["default"] is not None and not options.get("is_flag")
    return click.option(*declared, show_default=shown, **options)


def cli_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every render parameter as a click option, in declared order, named after its field."""
    for name in reversed(BlurParams.__dataclass_fields__):
        command = cli_option(name)(command)
    return command


def _parse_aperture(ctx: click.Context, option: click.Parameter, value: str) -> int | None:
    try:
        return parse_aperture(value)
    except BlurqError as error:
        raise click.BadParameter(str(error)) from error
