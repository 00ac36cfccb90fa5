"""Face tracks out of Retake: JSON (everything), CSV (one row per face per frame), Nuke ``.nk``
(one Tracker4 node per face with its key landmarks) — and JSON back in.

Coordinates in JSON and CSV are frame pixels over the plate's display window,
origin top-left, y down, pixel centres at +0.5; ``z`` is the landmark model's
relative depth on the same scale (smaller is nearer the camera). The ``.nk``
flips y for Nuke (origin bottom-left). Frame numbers are the plate's own.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import numpy as np

from engine.analysis import nuke_export
from engine.analysis.face_tracks import FaceTracks, TrackedFace
from engine.analysis.faces import KEY_LANDMARKS, NUM_LANDMARKS, HeadPose

FORMAT_NAME = "retake-face-tracks"
FORMAT_VERSION = 1
COORDINATES = ("frame pixels over the display window, origin top-left, x right, y down, pixel centres at +0.5; "
               "z: relative depth on the same scale, smaller is nearer the camera")


def _round(values: np.ndarray, digits: int = 3) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _face_json(face: TrackedFace) -> dict[str, Any]:
    pose = face.head_pose
    return {
        "id": face.id,
        "confidence": round(float(face.confidence), 4),
        "box": _round(face.box, 2),
        "head_pose": {"yaw": round(pose.yaw, 2), "pitch": round(pose.pitch, 2), "roll": round(pose.roll, 2),
                      "matrix": _round(pose.matrix, 5)},
        "landmarks": _round(face.landmarks),
    }


def to_json(tracks: FaceTracks, plate: str | None = None) -> dict[str, Any]:
    frames = sorted(tracks.frames)
    faces = []
    for face_id in tracks.ids():
        seen = sorted(tracks.track(face_id))
        faces.append({"id": face_id, "first": seen[0], "last": seen[-1], "frames": len(seen)})
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "plate": plate,
        "width": tracks.width,
        "height": tracks.height,
        "fps": tracks.fps,
        "first": frames[0] if frames else None,
        "last": frames[-1] if frames else None,
        "coordinates": COORDINATES,
        "landmark_count": NUM_LANDMARKS,
        "key_landmarks": KEY_LANDMARKS,
        "head_pose": "degrees; yaw: turn about the vertical (positive towards the image's right), pitch: nod, "
                     "roll: in-plane tilt (positive clockwise on screen); matrix columns: the face's x (eye to eye), "
                     "y (forehead to chin), z (into the image) axes",
        "faces": faces,
        "frames": [{"frame": frame, "faces": [_face_json(face) for face in tracks.frames[frame]]} for frame in frames],
    }


def from_json(data: dict[str, Any]) -> FaceTracks:
    """A ``FaceTracks`` back from ``to_json`` output (raw landmarks are not stored: they equal the smoothed)."""
    if data.get("format") != FORMAT_NAME:
        raise ValueError(f"not a Retake face-track file (format {data.get('format')!r})")
    tracks = FaceTracks(width=int(data["width"]), height=int(data["height"]), fps=float(data["fps"]))
    for entry in data["frames"]:
        frame = int(entry["frame"])
        faces = []
        for face in entry["faces"]:
            landmarks = np.asarray(face["landmarks"], dtype=np.float32)
            pose = face["head_pose"]
            faces.append(TrackedFace(int(face["id"]), frame, landmarks, landmarks, np.asarray(face["box"]),
                                     float(face["confidence"]),
                                     HeadPose(pose["yaw"], pose["pitch"], pose["roll"], np.asarray(pose["matrix"]))))
        tracks.frames[frame] = faces
    return tracks


def to_csv(tracks: FaceTracks) -> str:
    """One row per face per frame: frame, face_id, confidence, box, head pose, then x/y/z of
    all 468 landmarks (columns ``x0 y0 z0 ... x467 y467 z467``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["frame", "face_id", "confidence", "box_x0", "box_y0", "box_x1", "box_y1", "yaw", "pitch", "roll"]
    for i in range(NUM_LANDMARKS):
        columns += [f"x{i}", f"y{i}", f"z{i}"]
    writer.writerow(columns)
    for frame in sorted(tracks.frames):
        for face in tracks.frames[frame]:
            pose = face.head_pose
            row: list[Any] = [frame, face.id, f"{face.confidence:.4f}", *[f"{v:.2f}" for v in face.box],
                              f"{pose.yaw:.2f}", f"{pose.pitch:.2f}", f"{pose.roll:.2f}"]
            row += [f"{v:.3f}" for v in face.landmarks.reshape(-1)]
            writer.writerow(row)
    return out.getvalue()


def to_nuke(tracks: FaceTracks, plate: str | None = None) -> str:
    """One Tracker4 node per face (``RetakeFace1``...), tracks named after the key landmarks."""
    frames = sorted(tracks.frames)
    if not frames:
        return nuke_export.header()
    nodes = []
    for column, face_id in enumerate(tracks.ids()):
        track = tracks.track(face_id)
        points = {name: {frame: (float(face.landmarks[index, 0]), float(face.landmarks[index, 1]))
                         for frame, face in track.items()}
                  for name, index in KEY_LANDMARKS.items()}
        label = f"face {face_id}" + (f" of {os.path.basename(plate)}" if plate else "")
        nodes.append(nuke_export.tracker4(f"RetakeFace{face_id}", points, tracks.height, frames[0], frames[-1],
                                          reference_frame=min(track), label=label, xpos=column * 110))
    return nuke_export.join(nodes)


def write(tracks: FaceTracks, path: str, plate: str | None = None) -> str:
    """Write ``tracks`` in the format the extension names (.json, .csv, .nk); returns the format."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        text = json.dumps(to_json(tracks, plate), separators=(",", ":"))
    elif extension == ".csv":
        text = to_csv(tracks)
    elif extension == ".nk":
        text = to_nuke(tracks, plate)
    else:
        raise ValueError(f"unknown track format {extension!r}")
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(partial, path)
    return extension[1:]
