"""Analysis of a plate: faces, person masks, poses, planar and camera tracks.

The models (MediaPipe ``.tflite`` files, run by ``ai-edge-litert``) are found and
verified by ``engine.analysis.models``. Nothing here imports ``engine.pipeline``,
``engine.cli`` or ``engine.transforms``: the engine's stages import this package,
never the other way round.

Images going in are (H, W, 3) uint8 sRGB made from working-space frames by
``frames.display_rgb8(colour, working)`` (OCIO, never hand-rolled colour maths);
``frames.plate_frames_rgb8(path)`` streams a whole plate. Coordinates coming out
are frame pixels over the display window, x right, y down, pixel centres at +0.5.

The API the locks use (all per frame, on the plate's absolute frame numbers):

* faces — ``face_tracks.FaceTracker(fps).update(frame, rgb8) -> list[TrackedFace]``
  (or ``track_faces(frames, fps) -> FaceTracks`` then ``faces_at(frame)``): up to 8
  faces with stable ``id``; ``landmarks`` (468, 3) float32 (smoothed; ``raw_landmarks``
  unsmoothed), ``box`` (x0, y0, x1, y1), ``head_pose`` (yaw/pitch/roll degrees and a
  3x3 matrix), ``confidence``; ``faces.KEY_LANDMARKS`` names the eye corners, nose tip,
  mouth corners and chin. ``face_export.from_json`` reads a ``retake track faces``
  file back, so an analysis can be reused.
* bodies — ``masks.PersonSegmenter().mask(rgb8) -> (H, W) float32`` soft person mask
  0..1, steadied over consecutive frames (``reset()`` after a cut).
* poses — ``pose.PoseEstimator().people(rgb8) -> list[PersonPose]``: ``landmarks``
  (33, 3), ``visibility`` (33,), ``presence`` and the person's own (H, W) mask.
* blocking / camera — ``camera.track_camera(frames, reference)`` (per-frame 3x3
  homographies of the background motion) and ``planar.track_quad(frames, reference,
  quad)`` (a surface's corners and homography per frame).
"""
