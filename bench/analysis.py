"""Analysis benchmark: accuracy of faces, planar and camera tracking on real photographs with
known motion, and speed (frames/s at 1920x1080 on this machine's CPU) of faces (1 and 8),
person segmentation, pose, planar and camera tracking; the face lock's effect and each lock's cost.

    .venv/bin/python bench/analysis.py [--quick] [--threads N] [--only faces|tracking|speed|locks]

Never part of the test suite. The scenes come from ``tests/analysis_scenes.py``
(scikit-image's photographs moved by known transforms), so every figure is
measured against a known truth:

* detection recall/precision: faces found (landmark presence >= 0.5) vs faces placed,
  a hit being a face whose landmarks' centre lies within 25% of the face height;
* landmark error: mean distance to the landmarks found on the untransformed
  photograph mapped through the known transform, in px and in % of face height;
* identity switches over a moving 8-face sequence with an occlusion;
* jitter: per-landmark standard deviation (px) on a still face under sensor noise;
* planar corner error and camera reprojection error in px.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.analysis.camera import reprojection_error, track_camera  # noqa: E402
from engine.analysis.face_tracks import FaceTracker  # noqa: E402
from engine.analysis.faces import FaceDetector, FaceLandmarker, detect_faces  # noqa: E402
from engine.analysis.masks import PersonSegmenter  # noqa: E402
from engine.analysis.planar import track_quad  # noqa: E402
from engine.analysis.pose import PoseEstimator  # noqa: E402
from tests import analysis_scenes as scenes  # noqa: E402

W, H = 1920, 1080


def _match(faces, places, reference):
    hits, errors = 0, []
    used: set[int] = set()
    for place in places:
        truth = scenes.map_points(reference, place)
        best, best_d = None, None
        for i, face in enumerate(faces):
            d = float(np.linalg.norm(face.landmarks[:, :2].mean(0) - truth.mean(0)))
            if i not in used and (best_d is None or d < best_d):
                best, best_d = i, d
        if best is not None and best_d < 0.25 * place.height:
            used.add(best)
            hits += 1
            errors.append(float(np.linalg.norm(faces[best].landmarks[:, :2] - truth, axis=1).mean()) / place.height)
    return hits, len(faces) - len(used), errors


def accuracy(detector, landmarker, reference, quick: bool) -> None:
    print("\nFaces: detection and landmark accuracy (single frames, 1920x1080)")
    print(f"{'faces':>5} {'height px':>9} {'found':>6} {'false':>6} {'recall':>7} {'precision':>9} {'landmark err':>13}")
    back = scenes.background(W, H)
    for count in (1, 4, 8):
        for height in ((64, 96, 200) if quick else (48, 64, 96, 140, 200, 300)):
            places = scenes.grid(W, H, count, float(height))
            faces = detect_faces(scenes.render(back, places), detector, landmarker)
            hits, false, errors = _match(faces, places, reference)
            recall = hits / count
            precision = hits / max(len(faces), 1)
            err = f"{100 * np.mean(errors):.2f}% ({np.mean(errors) * height:.2f} px)" if errors else "-"
            print(f"{count:5d} {height:9d} {hits:6d} {false:6d} {recall:7.2f} {precision:9.2f} {err:>13}")


def identities(detector, landmarker, quick: bool) -> None:
    frames = 24 if quick else 48
    back = scenes.background(W, H)
    base = scenes.grid(W, H, 8, 110.0)
    tracker = FaceTracker(24.0, detector=detector, landmarker=landmarker)
    ids: dict[int, int] = {}
    switches = 0
    missed = 0
    for f in range(frames):
        places = [scenes.Placement(p.x + 60 * math.sin(2 * math.pi * f / frames + i),
                                   p.y + 25 * math.cos(4 * math.pi * f / frames + i),
                                   p.height * (1 + 0.2 * math.sin(2 * math.pi * f / frames)),
                                   p.angle + 10 * math.sin(2 * math.pi * f / frames + i)) for i, p in enumerate(base)]
        hidden = frames // 4 <= f < frames // 4 + 5
        occluders = [(int(places[0].x - 110), int(places[0].y - 130), int(places[0].x + 110), int(places[0].y + 130))] \
            if hidden else []
        faces = tracker.update(1001 + f, scenes.render(back, places, occluders=occluders))
        missed += (8 - (1 if hidden else 0)) - len(faces)
        for face in faces:
            centre = face.landmarks[:, :2].mean(0)
            which = int(np.argmin([math.hypot(p.x - centre[0], p.y - centre[1]) for p in places]))
            if ids.setdefault(which, face.id) != face.id:
                switches += 1
                ids[which] = face.id
    print(f"\nIdentities: 8 moving faces (110 px, +-60 px, +-20% scale, +-10 deg) over {frames} frames, "
          f"one hidden for 5 frames: {switches} identity switch(es), {missed} face-frame(s) missed, "
          f"ids used {sorted(set(ids.values()))}")


def jitter(detector, landmarker, reference) -> None:
    back = scenes.background(640, 360)
    for height in (96, 200):
        tracker = FaceTracker(24.0, detector=detector, landmarker=landmarker)
        raw, smooth = [], []
        for f in range(40):
            faces = tracker.update(f, scenes.render(back, [scenes.Placement(320, 180, height)], noise=3.0, seed=f))
            raw.append(faces[0].raw_landmarks[:, :2])
            smooth.append(faces[0].landmarks[:, :2])
        raw_j = np.array(raw)[5:].std(axis=0).mean()
        smooth_j = np.array(smooth)[5:].std(axis=0).mean()
        print(f"Jitter, still face {height} px, noise sigma 3/255: raw {raw_j:.3f} px, smoothed {smooth_j:.3f} px "
              "(mean per-landmark std)")
    tracker = FaceTracker(24.0, detector=detector, landmarker=landmarker)
    raw_e, smooth_e = [], []
    for f in range(30):
        place = scenes.Placement(100 + 14 * f, 180, 110)
        faces = tracker.update(f, scenes.render(back, [place], noise=3.0, seed=f))
        truth = scenes.map_points(reference, place)
        raw_e.append(np.linalg.norm(faces[0].raw_landmarks[:, :2] - truth, axis=1).mean())
        smooth_e.append(np.linalg.norm(faces[0].landmarks[:, :2] - truth, axis=1).mean())
    print(f"Lag, face moving 14 px/frame: landmark error raw {np.mean(raw_e):.2f} px, smoothed {np.mean(smooth_e):.2f} px")


def tracking_accuracy(quick: bool) -> None:
    scene = scenes.planar_scene(count=24, occluder=True)
    frames = [(1001 + i, f) for i, f in enumerate(scene.frames)]
    for ref in (0, 12):
        track = track_quad(frames, 1001 + ref, scene.corners[ref])
        errors = [np.linalg.norm(track.corners[1001 + i] - c, axis=1).mean() for i, c in enumerate(scene.corners)]
        print(f"Planar (640x360, 24 frames, crossing occluder, reference frame {1001 + ref}): corner error mean "
              f"{np.mean(errors):.3f} px, max {np.max(errors):.3f} px")
    for kind in ("pan", "push", "roll"):
        scene = scenes.camera_scene(kind, count=16, foreground=True)
        motion = track_camera([(1001 + i, f) for i, f in enumerate(scene.frames)], 1001)
        errors = [reprojection_error(motion.homographies[1001 + i], t, 640, 360) for i, t in enumerate(scene.truth)]
        print(f"Camera {kind:4s} (640x360, 16 frames, actor crossing): reprojection error mean {np.mean(errors):.3f} px, "
              f"max {np.max(errors):.3f} px")


def _fps(run, frames: list[np.ndarray]) -> float:
    run(frames[0])  # warm-up (XNNPACK packs weights on the first call)
    start = time.perf_counter()
    for frame in frames[1:]:
        run(frame)
    return (len(frames) - 1) / (time.perf_counter() - start)


def speed(detector, landmarker, threads: int, quick: bool) -> None:
    n = 6 if quick else 16
    back = scenes.background(W, H)
    rows = []
    for count in (1, 8):
        base = scenes.grid(W, H, count, 160.0 if count == 1 else 110.0)
        frames = [scenes.render(back, [scenes.Placement(p.x + 4 * f, p.y, p.height) for p in base]) for f in range(n)]
        tracker = FaceTracker(24.0, detector=detector, landmarker=landmarker)
        counter = iter(range(10 ** 6))
        rows.append((f"faces, {count} face(s), tracking (detector every 4 frames)",
                     _fps(lambda im: tracker.update(next(counter), im), frames)))
        rows.append((f"faces, {count} face(s), detector + landmarks every frame",
                     _fps(lambda im: detect_faces(im, detector, landmarker), frames)))
    import cv2

    body = cv2.resize(scenes.astronaut(), (1080, 1080))
    people = [np.ascontiguousarray(np.roll(np.pad(body, ((0, 0), (420, 420), (0, 0))), 4 * f, axis=1)) for f in range(n)]
    segmenter = PersonSegmenter(threads)
    rows.append(("person segmentation (soft mask)", _fps(segmenter.mask, people)))
    pose = PoseEstimator(threads)
    rows.append(("pose (detector + 33 landmarks + mask)", _fps(pose.people, people)))
    planar_frames = [cv2.resize(f, (W, H)) for f in scenes.planar_scene(count=n).frames]
    quad = scenes.planar_scene(count=n).corners[0] * 3.0
    start = time.perf_counter()
    track_quad([(i, f) for i, f in enumerate(planar_frames)], 0, quad)
    rows.append(("planar tracker", n / (time.perf_counter() - start)))
    cam_frames = [cv2.resize(f, (W, H)) for f in scenes.camera_scene("pan", count=n).frames]
    start = time.perf_counter()
    track_camera([(i, f) for i, f in enumerate(cam_frames)], 0)
    rows.append(("camera motion", n / (time.perf_counter() - start)))
    print(f"\nSpeed at 1920x1080 on CPU ({threads} thread(s), {os.cpu_count()} core(s)), frames/s:")
    for name, fps in rows:
        print(f"  {name:55s} {fps:7.2f}")


def locks(detector, landmarker, quick: bool) -> None:
    """The face lock's effect (landmark error of the result against the source's, locked vs not,
    and what changed outside the faces), and each lock's cost per frame at 1920x1080."""
    from engine.colour import Colour
    from engine.job import Locks
    from engine.lock_stage import LockStage
    from engine.locks import face_regions

    colour = Colour()

    def working(rgb8: np.ndarray) -> np.ndarray:
        return scenes.srgb_to_acescg(colour, rgb8)

    def marks(image: np.ndarray) -> list[np.ndarray]:
        rgb8 = (np.clip(colour.to_display(image[..., :3], "sRGB - Display", "Un-tone-mapped"), 0, 1) * 255 + 0.5)
        return [f.landmarks[:, :2] for f in detect_faces(rgb8.astype(np.uint8), detector, landmarker)]

    back = scenes.background(W, H)
    print("\nFace lock: a keyframe's paint moved each face's eyes and mouth by 7 px (plus a warm grade);")
    print(f"{'faces':>5} {'height px':>9} {'unlocked err px':>16} {'locked err px':>14} {'changed outside':>16}")
    stage = LockStage(Locks(faces=True), colour)
    for count, height in ((1, 160), (8, 110)) if not quick else ((8, 110),):
        places = scenes.grid(W, H, count, float(height))
        source = working(scenes.render(back, places))
        painted = source
        for p in places:
            painted = scenes.reshape_face(painted, (p.x, p.y - 5 * height / scenes.FACE_HEIGHT), height / scenes.FACE_HEIGHT,
                                    7.0 * height / 110.0)
        result = colour.cdl(painted, slope=[1.15, 1.0, 0.8])
        locked = stage.apply(1001, source, result)
        truth = marks(source)
        def error(image: np.ndarray) -> float:
            found = marks(image)
            return float(np.mean([min(np.linalg.norm(f - t, axis=1).mean() for f in found) for t in truth]))
        region = np.zeros((H, W), dtype=bool)
        for weight, _ in face_regions(truth, W, H):
            region |= weight > 0
        outside = float(np.abs(locked - result)[~region].max())
        print(f"{count:5d} {height:9d} {error(result):16.2f} {error(locked):14.2f} {outside:16.1e}")

    body = cv2_resize(scenes.astronaut(), (1080, 1080))
    frame = working(np.ascontiguousarray(np.pad(body, ((0, 0), (420, 420), (0, 0)), mode="edge")))
    graded = colour.cdl(frame, slope=[1.1, 1.0, 0.9])
    print("\nLock cost per 1920x1080 frame on CPU (one person; analysis included), frames/s:")
    for name in ("faces", "bodies", "poses", "blocking"):
        stage = LockStage(Locks(**{name: True}), colour)
        stage.apply(0, frame, graded)
        n = 2 if quick else 5
        start = time.perf_counter()
        for i in range(n):
            stage.apply(i, frame, graded)
        print(f"  locks.{name:9s} {n / (time.perf_counter() - start):7.2f}")


def cv2_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=("faces", "tracking", "speed", "locks"), help="run one part")
    args = parser.parse_args()
    detector, landmarker = FaceDetector(threads=args.threads), FaceLandmarker(threads=args.threads)
    reference = detect_faces(scenes.astronaut(), detector, landmarker)[0].landmarks
    if args.only in (None, "faces"):
        accuracy(detector, landmarker, reference, args.quick)
        identities(detector, landmarker, args.quick)
        jitter(detector, landmarker, reference)
    if args.only in (None, "tracking"):
        tracking_accuracy(args.quick)
    if args.only in (None, "speed"):
        speed(detector, landmarker, args.threads, args.quick)
    if args.only in (None, "locks"):
        locks(detector, landmarker, args.quick)


if __name__ == "__main__":
    main()
