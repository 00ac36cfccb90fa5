"""The keyframed grade: exact at keyframes, smooth and without overshoot between them."""
from __future__ import annotations

import numpy as np
import pytest

from engine.colour import Colour
from engine.errors import JobError
from engine.job import parse_job
from engine.transforms.grade import GradeTransform, hermite, monotone_tangents


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


def grade_job(keyframes, interpolation="smooth"):
    return parse_job({"plate": {"path": "p.####.exr"}, "output": {"path": "o.####.exr"},
                      "transform": {"name": "grade", "interpolation": interpolation}, "keyframes": keyframes})


def test_curve_passes_through_keys_without_overshoot():
    x = np.array([0.0, 10.0, 12.0, 40.0])
    y = np.array([[1.0], [2.0], [2.0], [0.5]])
    tangents = monotone_tangents(x, y)
    samples = np.array([hermite(x, y, tangents, t, "smooth")[0] for t in np.linspace(-5, 45, 501)])
    for xi, yi in zip(x, y[:, 0]):
        assert hermite(x, y, tangents, xi, "smooth")[0] == pytest.approx(yi)
    assert samples.min() >= 0.5 - 1e-12 and samples.max() <= 2.0 + 1e-12
    # Flat between two equal keys (a hold the artist asked for stays a hold).
    assert all(hermite(x, y, tangents, t, "smooth")[0] == pytest.approx(2.0) for t in np.linspace(10, 12, 9))
    # Smooth: no jump in slope at an interior key that the curve passes through monotonically.
    x2, y2 = np.array([0.0, 10.0, 20.0]), np.array([[0.0], [1.0], [3.0]])
    t2 = monotone_tangents(x2, y2)
    left = (hermite(x2, y2, t2, 10.0, "smooth") - hermite(x2, y2, t2, 9.999, "smooth"))[0] / 0.001
    right = (hermite(x2, y2, t2, 10.001, "smooth") - hermite(x2, y2, t2, 10.0, "smooth"))[0] / 0.001
    assert left == pytest.approx(right, rel=1e-2)


def test_linear_and_constant_modes():
    x, y = np.array([0.0, 10.0]), np.array([[0.0], [1.0]])
    zero = monotone_tangents(x, y)
    assert hermite(x, y, zero, 2.5, "linear")[0] == pytest.approx(0.25)
    assert hermite(x, y, zero, 9.9, "constant")[0] == 0.0
    assert hermite(x, y, zero, 2.5, "smooth")[0] == pytest.approx(0.15625)  # eased in from the first key


def test_grade_is_exact_at_keys_and_holds_outside(colour):
    key = {"slope": [1.3, 1.0, 0.7], "offset": 0.02, "power": [1.0, 1.2, 1.0], "saturation": 0.6}
    transform = GradeTransform.from_job(grade_job([{"frame": 10, "grade": {}}, {"frame": 30, "grade": key}]), colour)
    rng = np.random.default_rng(1)
    image = (rng.random((8, 8, 3), dtype=np.float32) * 4.0).astype(np.float32)
    np.testing.assert_allclose(transform.apply(10, image), colour.cdl(image, (1, 1, 1), (0, 0, 0), (1, 1, 1), 1.0),
                               atol=1e-5)
    np.testing.assert_allclose(transform.apply(5, image), image, atol=1e-4)
    expected = colour.cdl(image, key["slope"], (0.02,) * 3, key["power"], key["saturation"])
    np.testing.assert_allclose(transform.apply(30, image), expected, atol=1e-6)
    np.testing.assert_allclose(transform.apply(99, image), expected, atol=1e-6)
    middle = transform.cdl_at(20)
    assert 1.0 < middle.slope[0] < 1.3 and 0.6 < middle.saturation < 1.0


def test_strength_moves_toward_identity(colour):
    job = grade_job([{"frame": 1, "grade": {"slope": [2.0, 2.0, 2.0]}, "strength": 0.25}])
    assert GradeTransform.from_job(job, colour).cdl_at(1).slope == pytest.approx((1.25, 1.25, 1.25))


def test_alpha_passes_through(colour):
    transform = GradeTransform.from_job(grade_job([{"frame": 1, "grade": {"slope": 2.0}}]), colour)
    image = np.full((4, 4, 4), 0.5, np.float32)
    out = transform.apply(1, image)
    assert out.shape == (4, 4, 4) and np.all(out[..., 3] == 0.5) and out[..., 0].mean() > 0.5


def test_look_keyframes_blend(colour):
    look = colour.config.getLooks()[0].getName()
    transform = GradeTransform.from_job(grade_job([{"frame": 1, "grade": {}}, {"frame": 11, "look": look}]), colour)
    image = np.array([[[2.0, -0.1, 0.05]]], np.float32)  # out of gamut: the gamut compression look moves it
    a, b = transform.apply(1, image), transform.apply(11, image)
    assert not np.allclose(a, b)
    mid = transform.apply(6, image)
    np.testing.assert_allclose(mid, 0.5 * a + 0.5 * b, atol=1e-5)


def test_errors_name_the_keyframe(colour):
    with pytest.raises(JobError) as info:
        GradeTransform.from_job(grade_job([{"frame": 1, "look": "No Such Look"}]), colour)
    assert info.value.path == "$.keyframes[0].look" and "ACES 1.3 Reference Gamut Compression" in info.value.hint
    with pytest.raises(JobError, match="at least one keyframe"):
        GradeTransform.from_job(grade_job([]), colour)
