"""Moving-face scenes built from a real photograph, with the truth known, for the analysis
tests and ``bench/analysis.py``.

The face is scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain): a
real face no one on this project made. Each scene pastes the head, through a
similarity transform known per frame, onto a textured background. The truth is
the transform: landmarks found on the untransformed photograph, mapped through
it, are where the landmarks should be found in the scene.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The head in the 512x512 photograph: centre of the face and its height
# (forehead to chin of the landmarks found there, measured once).
HEAD_CENTRE = (226.0, 122.0)
FACE_HEIGHT = 109.0
_HEAD_RADII = (88.0, 108.0)  # the soft elliptical cut-out around the head (hair, neck)


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 sRGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., :3])


@dataclass(frozen=True)
class Placement:
    """Where one face is in one frame: the head centre (frame pixels), its face height (px),
    an in-plane rotation (degrees, clockwise on screen) and a mirror flag."""

    x: float
    y: float
    height: float
    angle: float = 0.0
    mirror: bool = False

    def matrix(self) -> np.ndarray:
        """(2, 3) affine: photograph pixels (continuous) -> frame pixels (continuous)."""
        s = self.height / FACE_HEIGHT
        a = math.radians(self.angle)
        c, si = math.cos(a) * s, math.sin(a) * s
        flip = -1.0 if self.mirror else 1.0
        linear = np.array([[c * flip, -si], [si * flip, c]])
        offset = np.array([self.x, self.y]) - linear @ np.array(HEAD_CENTRE)
        return np.hstack([linear, offset[:, None]])


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 sRGB: smooth colour gradients plus mid-frequency texture (so trackers have
    something to hold and the detector something to reject)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([90 + 60 * xs / width, 110 + 40 * ys / height, 140 - 50 * xs / width], axis=-1)
    noise = rng.normal(0, 1, (height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * 18
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _to_index(matrix: np.ndarray) -> np.ndarray:
    out = matrix.copy()
    out[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return out


def render(back: np.ndarray, placements: list[Placement], photo: np.ndarray | None = None,
           occluders: list[tuple[int, int, int, int]] = (), noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """One frame: the heads at ``placements`` over ``back``, then grey boxes (x0, y0, x1, y1),
    then Gaussian noise of ``noise`` code values. (H, W, 3) uint8 sRGB."""
    photo = astronaut() if photo is None else photo
    height, width = back.shape[:2]
    frame = back.astype(np.float32)
    ys, xs = np.mgrid[0:photo.shape[0], 0:photo.shape[1]].astype(np.float32) + 0.5
    ellipse = ((xs - HEAD_CENTRE[0]) / _HEAD_RADII[0]) ** 2 + ((ys - HEAD_CENTRE[1] + 5) / _HEAD_RADII[1]) ** 2
    alpha = np.clip((1.0 - ellipse) * 6.0, 0.0, 1.0).astype(np.float32)
    for place in placements:
        m = _to_index(place.matrix())
        head = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = cv2.warpAffine(alpha, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        frame = frame * (1 - a[..., None]) + head.astype(np.float32) * a[..., None]
    for x0, y0, x1, y1 in occluders:
        frame[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 128.0
    if noise:
        frame += np.random.default_rng(seed).normal(0, noise, frame.shape).astype(np.float32)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def map_points(points: np.ndarray, placement: Placement) -> np.ndarray:
    """(N, 2) photograph pixels -> (N, 2) frame pixels for a placement."""
    m = placement.matrix()
    return np.asarray(points, dtype=np.float64)[:, :2] @ m[:, :2].T + m[:, 2]


def grid(width: int, height: int, count: int, face_height: float) -> list[Placement]:
    """``count`` faces spread over a frame in a grid, some slightly turned."""
    cols = math.ceil(math.sqrt(count * width / height))
    rows = math.ceil(count / cols)
    places = []
    for i in range(count):
        r, c = divmod(i, cols)
        places.append(Placement(x=(c + 0.5) * width / cols, y=(r + 0.5) * height / rows, height=face_height,
                                angle=(-8.0 if i % 3 == 0 else 6.0 if i % 3 == 1 else 0.0)))
    return places


def _photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _index_h(h: np.ndarray) -> np.ndarray:
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=np.float64)
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], dtype=np.float64)
    return unshift @ h @ shift


@dataclass
class PlanarScene:
    """A real photograph (``coffee``) on a plane moving by known homographies over another photograph,
    crossed by a textured occluder. ``corners[i]`` (4, 2): the plane's true corners on frame i."""

    frames: list[np.ndarray]
    corners: list[np.ndarray]


def planar_scene(width: int = 640, height: int = 360, count: int = 24, occluder: bool = True) -> PlanarScene:
    card = _photo("coffee")  # 400 x 600
    ch, cw = card.shape[:2]
    back = cv2.resize(_photo("rocket"), (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(7)
    stripes = cv2.resize(rng.integers(0, 255, (40, 8, 3), dtype=np.uint8), (70, height + 40),
                         interpolation=cv2.INTER_NEAREST)
    source = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], dtype=np.float64)
    frames, corners = [], []
    for i in range(count):
        t = i / max(count - 1, 1)
        cx, cy = width * (0.38 + 0.2 * t), height * (0.5 + 0.06 * math.sin(3 * t))
        half_w, half_h = width * 0.2 * (1 + 0.15 * t), height * 0.26 * (1 + 0.15 * t)
        angle = math.radians(-6 + 14 * t)
        c, s = math.cos(angle), math.sin(angle)
        quad = []
        for k, (u, v) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
            # Perspective: the right edge shrinks as the plane turns.
            squeeze = 1.0 - (0.12 * t if u > 0 else 0.0)
            x, y = u * half_w, v * half_h * squeeze
            quad.append((cx + c * x - s * y, cy + s * x + c * y))
        quad = np.array(quad)
        h = cv2.getPerspectiveTransform(source.astype(np.float32), quad.astype(np.float32)).astype(np.float64)
        warped = cv2.warpPerspective(card, _index_h(h), (width, height), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpPerspective(np.ones((ch, cw), np.float32), _index_h(h), (width, height), flags=cv2.INTER_LINEAR)
        frame = back.astype(np.float32) * (1 - alpha[..., None]) + warped.astype(np.float32) * alpha[..., None]
        if occluder:
            # A bar sweeping right to left across the plane.
            x0 = int(width * (0.9 - 0.8 * t))
            frame[:, max(x0, 0):max(x0 + 70, 0)] = stripes[20:20 + height, : max(0, min(70, width - x0))] \
                if x0 < width else frame[:, 0:0]
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        corners.append(quad)
    return PlanarScene(frames, corners)


@dataclass
class CameraScene:
    """A camera moving over a still scene (a large real photograph) by known similarities, with a
    person-sized foreground object moving on its own. ``truth[i]`` (3, 3): frame 0 -> frame i."""

    frames: list[np.ndarray]
    truth: list[np.ndarray]


def camera_scene(kind: str, width: int = 640, height: int = 360, count: int = 16, foreground: bool = True) -> CameraScene:
    """``kind``: ``pan`` (sideways), ``push`` (zoom in), ``roll`` (turn about the lens axis)."""
    coffee = cv2.resize(_photo("coffee"), (512, 512), interpolation=cv2.INTER_AREA)
    world = cv2.resize(np.concatenate([_photo("astronaut"), coffee], axis=1), (2048, 1024),
                       interpolation=cv2.INTER_CUBIC)
    world_centre = np.array([1024.0, 512.0])
    frames, truth = [], []
    views = []
    for i in range(count):
        t = i / max(count - 1, 1)
        pan = {"pan": 180.0 * t}.get(kind, 0.0)
        zoom = {"push": 1.0 + 0.35 * t}.get(kind, 1.0)
        roll = {"roll": math.radians(12.0 * t)}.get(kind, 0.0)
        c, s = math.cos(roll) * zoom, math.sin(roll) * zoom
        # world -> frame: about the frame centre, the camera looks at world_centre + pan
        linear = np.array([[c, -s], [s, c]])
        look = world_centre + np.array([pan, 0.0])
        offset = np.array([width / 2, height / 2]) - linear @ look
        view = np.vstack([np.hstack([linear, offset[:, None]]), [0, 0, 1]])
        views.append(view)
        frame = cv2.warpPerspective(world, _index_h(view), (width, height), flags=cv2.INTER_LINEAR)
        if foreground:
            head = Placement(width * (0.75 - 0.5 * t), height * 0.55, height * 0.45, 0.0)
            frame = render(frame, [head])
        frames.append(frame)
        truth.append(view @ np.linalg.inv(views[0]))
    return CameraScene(frames, truth)


def srgb_to_acescg(colour: "object", rgb8: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W, 3) float32 scene-linear ACEScg, through OpenColorIO."""
    return colour.convert(np.ascontiguousarray(rgb8, dtype=np.float32) / 255.0,  # type: ignore[attr-defined]
                          "sRGB Encoded Rec.709 (sRGB)", "ACEScg")


def reshape_face(image: np.ndarray, centre: tuple[float, float], scale: float, amount: float = 7.0) -> np.ndarray:
    """An artist's keyframe that moved a face's features: eyes and mouth pushed apart by ``amount``
    px around ``centre`` (a face ``scale`` times the photograph's). Any (H, W, C) float image."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = centre
    g = np.exp(-(((xs - cx) / (45 * scale)) ** 2 + ((ys - cy) / (55 * scale)) ** 2))
    mapx = xs - amount * g * np.sign(xs - cx) * np.minimum(1, np.abs(xs - cx) / (15 * scale))
    mapy = ys - amount * g * np.sign(ys - cy) * np.minimum(1, np.abs(ys - cy) / (15 * scale))
    return cv2.remap(image, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
