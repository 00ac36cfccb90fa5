"""engine.colour: config resolution, names, conversions, displays, CDL, looks."""
from __future__ import annotations

import numpy as np
import pytest
import PyOpenColorIO as ocio

from engine.colour import BUILTIN_CONFIG, HDR_DISPLAY, HDR_VIEW, SDR_DISPLAY, SDR_VIEW, Colour
from engine.errors import InputError
from engine.io.header import AP0, AP1, REC709, Chromaticities, ImageHeader, Window

XYZ_E = Chromaticities((1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (1.0 / 3.0, 1.0 / 3.0))


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


def px(*rgb: float) -> np.ndarray:
    return np.array(rgb, dtype=np.float32).reshape(1, 1, -1)


# -- config resolution -------------------------------------------------------


def test_builtin_config_and_roles(colour: Colour, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)
    c = Colour()
    assert c.source == "built-in"
    assert c.config_path == BUILTIN_CONFIG
    assert c.working_space == "ACEScg"
    assert "studio" in c.config_name


def test_config_order_job_env_host(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.ocio"
    cfg.write_text(ocio.Config.CreateFromFile(BUILTIN_CONFIG).serialize())
    monkeypatch.delenv("OCIO", raising=False)
    assert Colour(host_config=str(cfg)).source == "host"
    monkeypatch.setenv("OCIO", str(cfg))
    assert Colour(host_config="ocio://cg-config-latest").source == "$OCIO"
    job = Colour("ocio://cg-config-latest", host_config=str(cfg))
    assert job.source == "job" and job.config_path == "ocio://cg-config-latest"


def test_missing_config_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError) as err:
        Colour(str(tmp_path / "nope.ocio"))
    assert err.value.path.endswith("nope.ocio")


# -- names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("lin_ap0", "ACES2065-1"),
        ("aces2065_1", "ACES2065-1"),
        ("lin_ap0_scene", "ACES2065-1"),
        ("aces_interchange", "ACES2065-1"),
        ("scene_linear", "ACEScg"),
        ("ACEScg", "ACEScg"),
        ("color_timing", "ACEScct"),
    ],
)
def test_aliases_and_roles(colour: Colour, name: str, canonical: str) -> None:
    assert colour.resolve_colorspace(name) == canonical


def test_unknown_name_lists_five_nearest(colour: Colour) -> None:
    with pytest.raises(InputError) as err:
        colour.resolve_colorspace("lin_ap")
    hint = err.value.hint or ""
    assert hint.startswith("nearest known: ")
    assert len(hint.removeprefix("nearest known: ").split("; ")) == 5
    assert "lin_ap0" in hint and "lin_ap1" in hint
    assert "lin_ap" in str(err.value)


# -- conversions ---------------------------------------------------------------


def test_reference_values(colour: Colour) -> None:
    out = colour.from_working(px(1.0, 0.5, 0.25), "ACES2065-1")
    np.testing.assert_allclose(out[0, 0], [0.80676, 0.49851, 0.24686], atol=2e-5)
    grey = colour.from_working(px(0.18, 0.18, 0.18), "ACES2065-1")
    np.testing.assert_allclose(grey[0, 0], [0.18, 0.18, 0.18], atol=1e-6)
    assert out.dtype == np.float32 and out.shape == (1, 1, 3)


@pytest.mark.parametrize("space", ["ACES2065-1", "ACEScct", "sRGB Encoded Rec.709 (sRGB)", "Linear Rec.2020", "ARRI LogC4"])
def test_round_trip(colour: Colour, space: str) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.random((8, 8, 3), dtype=np.float32)
    back = colour.to_working(colour.from_working(pixels, space), space)
    np.testing.assert_allclose(back, pixels, atol=1e-5)


def test_hdr_and_negative_values_survive(colour: Colour) -> None:
    pixels = px(1000.0, -0.5, 0.18)
    aces = colour.from_working(pixels, "ACES2065-1")
    assert aces.max() > 500.0 and aces.min() < 0.0
    back = colour.to_working(aces, "lin_ap0")
    np.testing.assert_allclose(back, pixels, rtol=1e-5, atol=1e-5)
    log = colour.from_working(pixels, "ACEScct")
    np.testing.assert_allclose(colour.to_working(log, "ACEScct"), pixels, rtol=1e-4, atol=1e-5)


def test_alpha_passes_through_untouched(colour: Colour) -> None:
    rng = np.random.default_rng(2)
    pixels = rng.random((4, 5, 4), dtype=np.float32) * 3.0
    out = colour.to_working(pixels, "sRGB Encoded Rec.709 (sRGB)")
    assert out.shape == (4, 5, 4)
    np.testing.assert_array_equal(out[..., 3], pixels[..., 3])
    assert not np.shares_memory(out, pixels)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("space", ["ACES2065-1", "ACEScct", "sRGB Encoded Rec.709 (sRGB)"])
def test_conversions_equal_ocios_own_apply_bit_for_bit(colour: Colour, space: str, channels: int) -> None:
    # The engine hands OCIO a PackedImageDesc over the array (much faster than applyRGB);
    # what comes out must be exactly what OCIO's applyRGB/applyRGBA make, on odd sizes,
    # HDR and negative values, and on a strided input (an RGBA plate's RGB).
    rng = np.random.default_rng(3)
    wide = (rng.standard_normal((37, 53, 4)) * 8.0).astype(np.float32)
    pixels = wide if channels == 4 else wide[..., :3]
    cpu = colour.config.getProcessor(colour.working_space, space).getOptimizedCPUProcessor(
        ocio.OPTIMIZATION_LOSSLESS)
    expected = np.ascontiguousarray(pixels, dtype=np.float32).copy()
    (cpu.applyRGBA if channels == 4 else cpu.applyRGB)(expected)
    expected[..., 3:] = pixels[..., 3:]
    out = colour.from_working(pixels, space)
    assert out.shape == pixels.shape and out.flags.c_contiguous and not np.shares_memory(out, pixels)
    np.testing.assert_array_equal(out, expected)
    assert colour.from_working(pixels[:0], space).shape == (0, 53, channels)


def test_bad_shape_rejected(colour: Colour) -> None:
    with pytest.raises(ValueError):
        colour.to_working(np.zeros((4, 4), np.float32), "ACEScg")


def test_rec709_chromaticities_match_named_space(colour: Colour) -> None:
    pixels = px(0.2, 0.5, 0.9)
    np.testing.assert_array_equal(colour.to_working(pixels, REC709), colour.to_working(pixels, "Linear Rec.709 (sRGB)"))
    np.testing.assert_array_equal(colour.to_working(pixels, AP0), colour.to_working(pixels, "ACES2065-1"))
    np.testing.assert_array_equal(colour.to_working(pixels, AP1), pixels)


def test_xyz_chromaticities_against_independent_numpy(colour: Colour) -> None:
    # Independent route: published Bradford cone matrix, E -> ACES white, then
    # the published XYZ -> ACEScg (AP1) matrix of ACES TB-2014-004.
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    x, y = 0.32168, 0.33767
    aces_white = np.array([x / y, 1.0, (1 - x - y) / y])
    e_white = np.array([1.0, 1.0, 1.0])
    adapt = np.linalg.inv(bradford) @ np.diag((bradford @ aces_white) / (bradford @ e_white)) @ bradford
    xyz_to_ap1 = np.array(
        [
            [1.6410233797, -0.3248032942, -0.2364246952],
            [-0.6636628587, 1.6153315917, 0.0167563477],
            [0.0117218943, -0.0082844420, 0.9883948585],
        ]
    )
    for xyz in ([1.0, 1.0, 1.0], [0.3, 0.5, 0.2], [4.0, 2.5, 0.1]):
        expected = xyz_to_ap1 @ adapt @ np.array(xyz)
        got = colour.to_working(px(*xyz), XYZ_E)[0, 0]
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)
    # Equal-energy white (X = Y = Z) is the white of XYZ-E: neutral in ACEScg.
    np.testing.assert_allclose(colour.to_working(px(1, 1, 1), XYZ_E)[0, 0], [1, 1, 1], atol=1e-4)
    # And back.
    pixels = px(0.3, 0.5, 0.2)
    np.testing.assert_allclose(colour.from_working(colour.to_working(pixels, XYZ_E), XYZ_E), pixels, atol=1e-5)


# -- header guesses ----------------------------------------------------------------


def header(fmt: str, pixel_type: str = "half", **kw) -> ImageHeader:
    w = Window.of_size(4, 4)
    return ImageHeader(path="x", file_format=fmt, display_window=w, data_window=w, pixel_aspect=1.0,
                       channels=("R", "G", "B"), selected=("R", "G", "B"), pixel_type=pixel_type, **kw)


def test_colorspace_for_header(colour: Colour) -> None:
    assert colour.colorspace_for_header(header("openexr", aces_container=True, chromaticities=AP0)) == "ACES2065-1"
    assert colour.colorspace_for_header(header("openexr", chromaticities=XYZ_E)) == XYZ_E
    assert colour.colorspace_for_header(header("openexr", colorspace_hint="ACEScg")) == "ACEScg"
    assert colour.colorspace_for_header(header("openexr")) == "Linear Rec.709 (sRGB)"
    assert colour.colorspace_for_header(header("png", "uint16")) == "sRGB Encoded Rec.709 (sRGB)"
    assert colour.colorspace_for_header(header("tiff", "uint8")) == "sRGB Encoded Rec.709 (sRGB)"
    assert colour.colorspace_for_header(header("tiff", "float")) == "Linear Rec.709 (sRGB)"
    assert colour.colorspace_for_header(header("dpx", "uint16")) == "sRGB Encoded Rec.709 (sRGB)"
    assert colour.colorspace_for_header(header("mov", "uint16")) == "Rec.1886 Rec.709 - Display"
    for guess in ("Linear Rec.709 (sRGB)", "sRGB Encoded Rec.709 (sRGB)", "Rec.1886 Rec.709 - Display"):
        colour.resolve_colorspace(guess)


def test_display_referred_source(colour: Colour) -> None:
    video = np.linspace(0, 1, 12, dtype=np.float32).reshape(2, 2, 3)
    # Default: OCIO's colorimetric route, bounded values.
    scene = colour.to_working(video, SDR_DISPLAY)
    assert scene.max() < 1.2
    np.testing.assert_allclose(colour.from_working(scene, SDR_DISPLAY), video, atol=1e-4)
    # Opt-in: invert the ACES 2.0 SDR view so the same view gives the video back.
    inverse = Colour(display_inverse_view=SDR_VIEW)
    scene = inverse.to_working(video, SDR_DISPLAY)
    np.testing.assert_allclose(inverse.to_display(scene, SDR_DISPLAY, SDR_VIEW), video, atol=1e-4)


# -- display, CDL, look -------------------------------------------------------------


def test_to_display_sdr_and_hdr(colour: Colour) -> None:
    pixels = px(0.18, 0.18, 0.18)
    sdr = colour.to_display(pixels, SDR_DISPLAY, SDR_VIEW)[0, 0]
    assert 0.3 < sdr[0] < 0.5 and np.allclose(sdr, sdr[0], atol=1e-4)
    hdr = colour.to_display(pixels, HDR_DISPLAY, HDR_VIEW)[0, 0]
    assert 0.3 < hdr[0] < 0.5  # PQ: ~10 nits grey sits low in the code range
    assert colour.to_display(px(100.0, 100.0, 100.0))[0, 0, 0] <= 1.001  # tone-mapped, not clipped white
    with pytest.raises(InputError):
        colour.to_display(pixels, SDR_DISPLAY, "No Such View")
    with pytest.raises(InputError):
        colour.to_display(pixels, "No Such Display", SDR_VIEW)


def test_cdl(colour: Colour) -> None:
    pixels = px(0.18, 0.5, 1000.0)
    np.testing.assert_allclose(colour.cdl(pixels), pixels, rtol=1e-4)
    brighter = colour.cdl(pixels, offset=(0.05, 0.05, 0.05))
    assert (brighter[0, 0] > pixels[0, 0]).all()
    assert brighter[0, 0, 2] > 1000.0  # no-clamp style: HDR survives the ACEScct grade
    grey = colour.cdl(px(0.18, 0.18, 0.18, 0.5), saturation=0.0)
    assert grey[0, 0, 3] == 0.5


def test_look(colour: Colour) -> None:
    look = next(iter(colour.config.getLookNames()))
    out = colour.look(px(0.18, 0.18, 0.18), look)
    np.testing.assert_allclose(out, px(0.18, 0.18, 0.18), atol=1e-4)
    with pytest.raises(InputError):
        colour.look(px(0.1, 0.1, 0.1), "Not A Look")


def test_processors_are_cached(colour: Colour) -> None:
    colour.from_working(px(1, 1, 1), "ACEScct")
    size = len(colour._processors)
    colour.from_working(px(2, 2, 2), "ACEScct")
    colour.from_working(px(2, 2, 2), "acescct")
    assert len(colour._processors) == size
