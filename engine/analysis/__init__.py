"""Analysis of a plate: faces, person masks, poses, planar and camera tracks.

The models (MediaPipe ``.tflite`` files, run by ``ai-edge-litert``) are found and
verified by ``engine.analysis.models``. Nothing here imports ``engine.pipeline``,
``engine.cli`` or ``engine.transforms``: the engine's stages import this package,
never the other way round.
"""
