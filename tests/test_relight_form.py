"""``relight``'s people form: person silhouettes inflated into rounded forms under the
image's shape-from-shading normals (engine.transforms.relight), and ``form`` ``image`` (or
nobody in the mask) giving what relight gave before, bit for bit."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.colour import Colour
from engine.errors import JobError
from engine.job import Job, Light, parse_job
from engine.filters import gaussian_blur
from engine.transforms import TransformContext, build_transform
from engine.transforms.relight import (LUMA, RelightTransform, add_light, inflate, light_vector, mask_normals,
                                       shading_estimate)
from tests.data_paths import require_data

SIDE = 128
LEFT_KEY = Light(azimuth=-60, elevation=0, intensity=1.0, softness=0.0)   # from the camera's left


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


def grid(height: int = SIDE, width: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) pixel centres."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    return ys, xs


def ellipse(height: int = SIDE, width: int = SIDE, centre: tuple[float, float] = (64.0, 64.0),
            radii: tuple[float, float] = (30.0, 44.0)) -> np.ndarray:
    """(H, W) float32 soft mask: an upright ellipse (x radius, y radius) with a 2 px soft edge."""
    ys, xs = grid(height, width)
    r = np.hypot((xs - centre[0]) / radii[0], (ys - centre[1]) / radii[1])
    return np.clip((1.0 - r) * min(radii) / 2.0 + 0.5, 0.0, 1.0).astype(np.float32)


def textured(size: int = SIDE) -> np.ndarray:
    """(H, W, 3) float32 ACEScg: smooth shading, a fine print, and an HDR highlight at 20.0."""
    ys, xs = grid(size, size)
    shade = 0.3 + 0.2 * np.sin(xs / 17.0) * np.cos(ys / 23.0)
    albedo = 0.5 + 0.2 * np.sin(xs * 1.1)[..., None] * np.array([1.0, 0.8, 0.6])
    image = (albedo * shade[..., None]).astype(np.float32)
    image[40, 50] = 20.0
    return image


def tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask))[None, None]


def today_add_light(image: torch.Tensor, light: Light, side: int) -> torch.Tensor:
    """relight's image-only estimate and light as they were before the people form, verbatim:
    the reference ``form`` ``image`` (and an empty mask) must give bit for bit."""
    if light.intensity <= 0:
        return image
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luma = (image.clamp_min(0.0) * weights).sum(dim=1, keepdim=True)
    log_l = torch.log(luma + 1e-4)
    illumination = torch.exp(gaussian_blur(log_l, 0.02 * side))
    albedo = image / illumination.clamp_min(1e-4)
    height = gaussian_blur(log_l, max(1.0, 0.015 * side))
    gx = (F.pad(height, (0, 1, 0, 0), mode="replicate")[..., 1:] - F.pad(height, (1, 0, 0, 0), mode="replicate")[..., :-1]) / 2
    gy = (F.pad(height, (0, 0, 0, 1), mode="replicate")[..., 1:, :] - F.pad(height, (0, 0, 1, 0), mode="replicate")[..., :-1, :]) / 2
    typical = torch.sqrt((gx ** 2 + gy ** 2).mean()).clamp_min(1e-6)
    scale = math.tan(math.radians(30.0)) / typical
    normals = torch.cat([-gx * scale, -gy * scale, torch.ones_like(gx)], dim=1)
    normals = normals / normals.norm(dim=1, keepdim=True)
    lx, ly, lz = light_vector(light.azimuth, light.elevation)
    facing = normals[:, 0:1] * lx + normals[:, 1:2] * ly + normals[:, 2:3] * lz
    wrap = light.softness
    lambert = ((facing + wrap) / (1.0 + wrap)).clamp_min(0.0)
    if light.softness > 0:
        lambert = gaussian_blur(lambert, light.softness * 0.01 * side)
    colour = torch.tensor(light.colour, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return image + light.intensity * illumination.mean() * lambert * albedo * colour


def today(image: np.ndarray, light: Light) -> np.ndarray:
    with torch.no_grad():
        lit = today_add_light(tensor(image), light, max(image.shape[:2]))
    return lit[0].permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- the form alone

def test_the_inflated_silhouette_faces_outwards_at_its_edge_and_the_camera_in_the_middle() -> None:
    mask = ellipse()
    normals = mask_normals(mask_tensor(mask))[0].permute(1, 2, 0).numpy()
    # 3 px inside the edge on each side (the ellipse spans x 34..94, y 20..108)
    left, right, top, bottom = normals[64, 37], normals[64, 90], normals[23, 64], normals[104, 64]
    assert left[0] < -0.7 and right[0] > 0.7 and top[1] < -0.7 and bottom[1] > 0.7, (left, right, top, bottom)
    assert abs(left[1]) < 0.05 and abs(top[0]) < 0.05                       # straight out, not askew
    assert normals[64, 64, 2] > 0.999                                        # the middle faces the camera
    assert np.array_equal(normals[mask == 0], np.tile([0.0, 0.0, 1.0], ((mask == 0).sum(), 1)))

    # A disc becomes (close to) a hemisphere: its normals' x follows a sphere's.
    ys, xs = grid()
    disc = ellipse(radii=(40.0, 40.0))
    inside = disc >= 0.5
    n = mask_normals(mask_tensor(disc))[0].numpy()
    assert np.corrcoef(n[0][inside], ((xs - 64) / 40)[inside])[0, 1] > 0.99
    height = inflate(disc)
    assert 36.0 < height[64, 64] < 41.0, "a person's height is about their half-width"
    # Two people: each as round as their own size (a far one is not flattened by a near one).
    two = np.maximum(ellipse(centre=(40.0, 64.0), radii=(30.0, 30.0)), ellipse(centre=(104.0, 64.0), radii=(10.0, 10.0)))
    height = inflate(two)
    assert 26.0 < height[64, 40] < 31.0 and 7.0 < height[64, 104] < 11.0, (height[64, 40], height[64, 104])

    # The frame's border is not an edge: a body cut off by the bottom of the frame goes on past it.
    cut = ellipse(centre=(64.0, 120.0))
    n = mask_normals(mask_tensor(cut))[0].permute(1, 2, 0).numpy()
    assert abs(n[126, 64, 1]) < 0.15


def test_a_light_from_the_left_lights_the_persons_left_more_than_their_right() -> None:
    flat = np.full((SIDE, SIDE, 3), 0.18, dtype=np.float32)
    mask = ellipse()
    inside = mask >= 0.5
    _, xs = grid()
    left, right = inside & (xs < 64), inside & (xs > 64)
    with torch.no_grad():
        person = add_light(tensor(flat), LEFT_KEY, SIDE, mask_tensor(mask))[0].permute(1, 2, 0).numpy()
        image_only = add_light(tensor(flat), LEFT_KEY, SIDE)[0].permute(1, 2, 0).numpy()
    gain = person[..., 1] / 0.18 - 1.0
    # measured: 0.78 on the left, 0.10 on the right
    assert gain[left].mean() > 0.6 and gain[left].mean() > 5.0 * gain[right].mean(), \
        (gain[left].mean(), gain[right].mean())
    # The image alone reads a flat grey frame as flat: both halves gain the same (cos 60 = 0.5).
    flat_gain = image_only[..., 1] / 0.18 - 1.0
    assert abs(flat_gain[left].mean() - 0.5) < 1e-5 and abs(flat_gain[left].mean() - flat_gain[right].mean()) < 1e-6


# --------------------------------------------------------------------------- as it was, where nobody is

@pytest.mark.parametrize("light", [LEFT_KEY, Light(azimuth=40, elevation=25, intensity=2.0,
                                                   colour=(1.0, 0.8, 0.5), softness=0.4)])
def test_no_person_and_the_image_form_are_todays_relight_bit_for_bit(light: Light) -> None:
    image = textured()
    reference = today(image, light)
    nobody = np.zeros((SIDE // 2, SIDE // 2), dtype=np.float32)   # a mask at a reduced size, empty
    with torch.no_grad():
        assert np.array_equal(add_light(tensor(image), light, SIDE, mask_tensor(nobody))[0].permute(1, 2, 0).numpy(),
                              reference)
        _, _, normals = shading_estimate(tensor(image), SIDE)
        _, _, with_nobody = shading_estimate(tensor(image), SIDE, mask_tensor(nobody))
    assert torch.equal(normals, with_nobody)
    assert np.array_equal(RelightTransform([(1, light)], "smooth").apply(1, image), reference)
    assert np.array_equal(RelightTransform([(1, light)], "smooth", people=lambda _i: nobody).apply(1, image),
                          reference)


def test_outside_the_person_the_light_is_todays_bit_for_bit_and_inside_it_differs() -> None:
    image = textured()
    small = ellipse(64, 64, centre=(32.0, 32.0), radii=(15.0, 22.0))   # made at half size, as from the model
    full = F.interpolate(mask_tensor(small), size=(SIDE, SIDE), mode="bilinear", align_corners=False)[0, 0].numpy()
    lit = RelightTransform([(1, LEFT_KEY)], "smooth", people=lambda _i: small).apply(1, image)
    reference = today(image, LEFT_KEY)
    outside = full == 0
    assert outside.mean() > 0.6
    assert np.array_equal(lit[outside], reference[outside])
    assert np.abs(lit[full > 0.9] - reference[full > 0.9]).mean() > 0.01


def test_intensity_0_gives_the_frame_back_and_hdr_is_not_clipped() -> None:
    image = np.concatenate([textured(), np.full((SIDE, SIDE, 1), 0.5, np.float32)], axis=-1)   # RGBA
    mask = ellipse()
    assert mask[40, 50] == 1.0   # the 20.0 highlight is on the person
    off = RelightTransform([(1, Light(intensity=0.0))], "smooth", people=lambda _i: mask).apply(1, image)
    assert np.array_equal(off, image)
    lit = RelightTransform([(1, Light(azimuth=-30, elevation=20, intensity=1.5))], "smooth",
                           people=lambda _i: mask).apply(1, image)
    assert lit[40, 50, 0] > 20.0 and np.all(lit[..., :3] >= image[..., :3])    # added, never clipped
    assert np.array_equal(lit[..., 3], image[..., 3])                            # alpha untouched


# --------------------------------------------------------------------------- the job's parameter

def relight_job(**params: str) -> Job:
    return parse_job({"plate": {"path": "p.####.exr"}, "output": {"path": "o.####.exr"},
                      "transform": {"name": "relight", **params},
                      "keyframes": [{"frame": 1, "light": {"azimuth": -60, "elevation": 0, "intensity": 1.0,
                                                           "softness": 0.0}}]}, base_dir="/jobs")


def context_for(image: np.ndarray, colour: Colour) -> TransformContext:
    return TransformContext(colour=colour, plate=None, device="cpu", source=lambda _f: image,  # type: ignore[arg-type]
                            size=(image.shape[1], image.shape[0]), frames=(1, 1))


def test_form_is_a_relight_parameter_and_image_is_todays_output(colour: Colour) -> None:
    assert relight_job().transform.params == {"interpolation": "smooth", "form": "image"}
    with pytest.raises(JobError, match=r"\$\.transform\.form"):
        relight_job(form="body")
    image = textured()
    transform = build_transform(relight_job(form="image"), context_for(image, colour))
    assert isinstance(transform, RelightTransform) and transform.people is None
    assert np.array_equal(transform.apply(1, image), today(image, LEFT_KEY))


def test_a_missing_segmentation_model_is_said_before_the_first_frame_with_both_fixes(
        colour: Colour, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.analysis import models

    def missing(name: str):
        raise models.ModelMissingError(f"the {name} model is missing", hint="run `retake models --install`")

    monkeypatch.setattr(models, "model_path", missing)
    with pytest.raises(models.ModelMissingError, match=r'retake models --install.*"transform.form": "image"'):
        build_transform(relight_job(form="people"), context_for(textured(), colour))
    assert build_transform(relight_job(form="image"), context_for(textured(), colour)) is not None


# --------------------------------------------------------------------------- a real person

def test_a_real_person_is_rounded_by_the_light_and_the_rest_of_the_frame_is_todays(colour: Colour) -> None:
    """Sintel (a rendered person, head and shoulders, over a street): a key from the camera's
    left lights the left of her head and body more, against the right, than the image alone does."""
    import cv2

    from engine.analysis import models
    from tests import analysis_scenes as scenes

    path = require_data("sintel", "frame_0016.png")
    if any(s.state != "ok" for s in models.model_status()):
        pytest.skip("analysis models not installed; run `retake models --install` (./setup.sh does it)")
    rgb8 = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    image = scenes.srgb_to_acescg(colour, rgb8).astype(np.float32)
    height, width = image.shape[:2]
    context = context_for(image, colour)
    people = build_transform(relight_job(form="people"), context)
    assert isinstance(people, RelightTransform) and people.people is not None
    mask = people.people(image)
    assert max(mask.shape) <= 960 and mask.shape[0] < height   # made at the reduced analysis size
    full = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    lit = people.apply(1, image)
    plain = build_transform(relight_job(form="image"), context).apply(1, image)

    # Her head: the largest part of the mask; its left and right thirds.
    count, labels, stats, _ = cv2.connectedComponentsWithStats((full >= 0.9).astype(np.uint8))
    body = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, w = stats[body, cv2.CC_STAT_LEFT], stats[body, cv2.CC_STAT_WIDTH]
    assert 0.1 < stats[body, cv2.CC_STAT_AREA] / full.size < 0.5, "the model did not find her"
    xs = np.arange(width)[None, :]
    left = (labels == body) & (xs < x0 + w / 3)
    right = (labels == body) & (xs > x0 + 2 * w / 3)

    def left_over_right(out: np.ndarray) -> float:
        added = (out - image)[..., 1] / np.maximum(image[..., 1], 1e-3)
        return float(added[left].mean() / max(added[right].mean(), 1e-6))

    # measured: 6.8 with the form, 0.56 with the image alone (which reads her lit hair as facing right)
    assert left_over_right(lit) > 3.0 and left_over_right(lit) > 4.0 * left_over_right(plain), \
        (left_over_right(lit), left_over_right(plain))
    nobody = full == 0
    assert nobody.mean() > 0.3 and np.array_equal(lit[nobody], plain[nobody])
