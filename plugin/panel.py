"""The one Retake panel, shared by Nuke (docked), Resolve (Scripts menu) and the standalone window.

It reads the plate, the keyframe markers and the colour context from a ``Host``, lets the
artist direct the transformation (keyframes with prompts and images, Motion/Structure,
locks, the transformation and its parameters, the output), builds the job with
``plugin.jobs`` (validated by ``engine.job.parse_job`` before anything runs), renders it
with the engine out of process (``plugin.worker``), shows progress with frames/s and
ETA, a before/after preview, and every error in the panel itself, then hands the result
back to the host.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QSlider, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.errors import JobError
from engine.job import DEFAULT_LOCKS, LOCK_NAMES
from plugin.hosts.base import Host, HostError, KeyframeMark, PlateRef
from plugin.jobs import (PANEL_MAX_KEYFRAMES, PanelLimitError, PreparedRender, RenderSettings, prepare_render,
                         transform_names, transform_params)
from plugin.wipe import WipeView
from plugin.worker import PreviewWorker, RenderWorker

_COLUMNS = ("Frame", "Thumbnail", "Prompt", "Image", "Reference")
_THUMB = 96
_FORMATS = (("EXR (ACES2065-1)", "exr"), ("SDR (Rec.709)", "sdr"), ("HDR (Rec.2100 PQ)", "hdr"))
_QUALITIES = (("Final (source size)", "final"), ("Draft (360p)", "draft"))
_ERROR_STYLE = "QLabel { background: #5a1f1f; color: #ffd9d9; border: 1px solid #a33; padding: 6px; }"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class RetakePanel(QWidget):
    """The panel. ``state`` is "idle", "rendering", "done", "failed" or "cancelled"."""

    render_finished = Signal(dict)

    def __init__(self, host: Host | None, *, retake: list[str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.retake = retake
        self.plate_ref: PlateRef | None = None
        self.state = "idle"
        self.last_result = ""
        self.prepared: PreparedRender | None = None
        self.worker: RenderWorker | None = None
        # No Qt parent: the worker lives as long as its threads need it (they hold it), not as
        # long as the panel's C++ object, so a closed panel cannot leave a thread emitting on a dead object.
        self.previews = PreviewWorker(retake)
        self.previews.ready.connect(self._preview_ready)
        self.previews.failed.connect(self._preview_failed)
        self.scratch = tempfile.mkdtemp(prefix="retake-panel-")
        self._before: str | None = None
        self._after: str | None = None
        self.setWindowTitle("Retake" + (f" — {host.name}" if host else ""))
        self._build()
        self._refresh_params()

    # -- layout --------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        header = QHBoxLayout()
        title = QLabel("Retake" + (f"  ·  {self.host.name}" if self.host else ""))
        font = QFont(title.font())
        font.setPointSize(font.pointSize() + 3)
        font.setBold(True)
        title.setFont(font)
        header.addWidget(title)
        header.addStretch(1)
        self.open_button = QPushButton("Open plate…")
        self.open_button.clicked.connect(self._choose_plate)
        self.open_button.setVisible(self.host is not None and self.host.name == "Standalone")
        self.reload_button = QPushButton("Reload from host")
        self.reload_button.clicked.connect(self.load_from_host)
        header.addWidget(self.open_button)
        header.addWidget(self.reload_button)
        outer.addLayout(header)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(_ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        outer.addWidget(self.error_label)

        columns = QHBoxLayout()
        outer.addLayout(columns, 1)
        left = QVBoxLayout()
        right = QVBoxLayout()
        columns.addLayout(left, 3)
        columns.addLayout(right, 2)

        plate_box = QGroupBox("Plate")
        plate_layout = QVBoxLayout(plate_box)
        self.plate_label = QLabel("No plate loaded.")
        self.plate_label.setWordWrap(True)
        self.colour_label = QLabel()
        self.colour_label.setWordWrap(True)
        self.colour_label.setStyleSheet("color: #999;")
        plate_layout.addWidget(self.plate_label)
        plate_layout.addWidget(self.colour_label)
        left.addWidget(plate_box)

        keys_box = QGroupBox("Keyframes")
        keys_layout = QVBoxLayout(keys_box)
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(_THUMB * 9 // 16 + 8)
        header_view = self.table.horizontalHeader()
        header_view.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header_view.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 60)
        self.table.setColumnWidth(1, _THUMB + 8)
        self.table.setColumnWidth(3, 130)
        self.table.setColumnWidth(4, 110)
        keys_layout.addWidget(self.table)
        row = QHBoxLayout()
        self.frame_spin = QSpinBox()
        self.frame_spin.setRange(-1_000_000, 10_000_000)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(lambda: self.add_keyframe(self.frame_spin.value()))
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.jump_button = QPushButton("Jump")
        self.jump_button.setToolTip("go to the selected keyframe's frame (in the host and the preview)")
        self.jump_button.clicked.connect(self.jump_to_selected)
        self.image_button = QPushButton("Image…")
        self.image_button.setToolTip("the selected keyframe as it should become (EXR, TIFF, PNG, DPX)")
        self.image_button.clicked.connect(lambda: self._choose_file(3))
        self.reference_button = QPushButton("Reference…")
        self.reference_button.setToolTip("a character reference image for the selected keyframe")
        self.reference_button.clicked.connect(lambda: self._choose_file(4))
        self.count_label = QLabel()
        for widget in (QLabel("Frame"), self.frame_spin, self.add_button, self.remove_button, self.jump_button,
                       self.image_button, self.reference_button):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.count_label)
        keys_layout.addLayout(row)
        self.limit_label = QLabel()
        self.limit_label.setWordWrap(True)
        self.limit_label.setStyleSheet("color: #e0a040;")
        self.limit_label.hide()
        keys_layout.addWidget(self.limit_label)
        # Prompts are linted as they are typed (engine.generate.prompts, pure Python): a prompt
        # says the target state ("a purple sky"), never the change or what is not there.
        self.prompt_label = QLabel()
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setStyleSheet("color: #e0a040;")
        self.prompt_label.hide()
        keys_layout.addWidget(self.prompt_label)
        self.table.itemChanged.connect(self._prompt_edited)
        model_row = QHBoxLayout()
        self.model_button = QPushButton("Model folder…")
        self.model_button.setToolTip("the studio's image model (a diffusers folder or a checkpoint) that makes "
                                     "keyframes from prompts; nothing is ever downloaded")
        self.model_button.clicked.connect(self._choose_model)
        self.model_label = QLabel()
        self.model_label.setStyleSheet("color: gray;")
        model_row.addWidget(self.model_button)
        model_row.addWidget(self.model_label, 1)
        keys_layout.addLayout(model_row)
        self._show_model()
        left.addWidget(keys_box, 1)

        direct_box = QGroupBox("Direction")
        grid = QGridLayout(direct_box)
        self.motion = self._slider(grid, 0, "Motion", "how closely the result follows the source's movement")
        self.structure = self._slider(grid, 1, "Structure", "how closely the result follows the source's layout")
        locks_row = QHBoxLayout()
        self.locks: dict[str, QCheckBox] = {}
        for name in LOCK_NAMES:
            box = QCheckBox(name.capitalize())
            self.locks[name] = box
            locks_row.addWidget(box)
        locks_row.addStretch(1)
        grid.addWidget(QLabel("Locks"), 2, 0)
        grid.addLayout(locks_row, 2, 1, 1, 2)
        left.addWidget(direct_box)

        transform_box = QGroupBox("Transformation and output")
        form = QFormLayout(transform_box)
        self.transform_combo = QComboBox()
        self.transform_combo.addItems(transform_names())
        if self.transform_combo.findText(RenderSettings().transform) >= 0:
            self.transform_combo.setCurrentText(RenderSettings().transform)
        self.transform_combo.currentTextChanged.connect(self._refresh_params)
        form.addRow("Transformation", self.transform_combo)
        self.params_widget = QWidget()
        self.params_layout = QFormLayout(self.params_widget)
        self.params_layout.setContentsMargins(12, 0, 0, 0)
        self.param_inputs: dict[str, QComboBox | QLineEdit] = {}
        form.addRow(self.params_widget)
        output_row = QHBoxLayout()
        self.format_combo = QComboBox()
        for label, value in _FORMATS:
            self.format_combo.addItem(label, value)
        self.quality_combo = QComboBox()
        for label, value in _QUALITIES:
            self.quality_combo.addItem(label, value)
        output_row.addWidget(self.format_combo)
        output_row.addWidget(self.quality_combo)
        form.addRow("Output", output_row)
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("empty: a retake folder beside the plate")
        form.addRow("Output file", self.output_edit)
        left.addWidget(transform_box)

        preview_box = QGroupBox("Before / after")
        preview_layout = QVBoxLayout(preview_box)
        self.wipe = WipeView()
        preview_layout.addWidget(self.wipe, 1)
        preview_row = QHBoxLayout()
        self.preview_frame = QSpinBox()
        self.preview_frame.setRange(-1_000_000, 10_000_000)
        self.preview_button = QPushButton("Show frame")
        self.preview_button.clicked.connect(lambda: self.request_preview(self.preview_frame.value()))
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["wipe", "side by side"])
        self.mode_combo.currentTextChanged.connect(self.wipe.set_mode)
        # Face tracks over the plate (the engine's `retake track faces`, drawn by `retake preview --overlay`).
        self.track_button = QPushButton("Track faces")
        self.track_button.setToolTip("find and follow up to 8 faces over the plate, to show their tracks here")
        self.track_button.clicked.connect(self.track_faces)
        self.tracks_check = QCheckBox("Show tracks")
        self.tracks_check.setEnabled(False)
        self.tracks_check.toggled.connect(lambda _on: self.request_preview(self.preview_frame.value()))
        self.tracks_path: str | None = None
        for widget in (QLabel("Frame"), self.preview_frame, self.preview_button, self.mode_combo, self.track_button,
                       self.tracks_check):
            preview_row.addWidget(widget)
        preview_row.addStretch(1)
        preview_layout.addLayout(preview_row)
        right.addWidget(preview_box, 1)

        render_box = QGroupBox("Render")
        render_layout = QVBoxLayout(render_box)
        buttons = QHBoxLayout()
        self.render_button = QPushButton("Render")
        self.render_button.setDefault(True)
        self.render_button.clicked.connect(self.render)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.render_button)
        buttons.addWidget(self.cancel_button)
        render_layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no plate")
        render_layout.addWidget(self.progress)
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)
        render_layout.addWidget(self.status_label)
        right.addWidget(render_box)
        self._update_count()

    def _slider(self, grid: QGridLayout, row: int, name: str, tip: str) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(1, 9)
        slider.setValue(5)
        slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        slider.setTickInterval(1)
        slider.setToolTip(f"{name} 1-9: {tip} (9 = closest)")
        value = QLabel("5")
        value.setMinimumWidth(16)
        slider.valueChanged.connect(lambda v: value.setText(str(v)))
        grid.addWidget(QLabel(name), row, 0)
        grid.addWidget(slider, row, 1)
        grid.addWidget(value, row, 2)
        return slider

    def _refresh_params(self) -> None:
        # takeRow + deleteLater, not removeRow: removeRow deletes the C++ widgets under the
        # Python wrappers this panel still holds, which PySide reports as a malformed program.
        while self.params_layout.rowCount():
            row = self.params_layout.takeRow(0)
            for item in (row.labelItem, row.fieldItem):
                if item is not None and item.widget() is not None:
                    item.widget().hide()
                    item.widget().setParent(None)
                    item.widget().deleteLater()
        self.param_inputs = {}
        for name, (kind, default) in transform_params(self.transform_combo.currentText()).items():
            widget: QComboBox | QLineEdit
            if isinstance(kind, tuple):
                widget = QComboBox()
                widget.addItems([str(v) for v in kind])
                widget.setCurrentText(str(default))
            else:
                widget = QLineEdit("" if default is None else str(default))
            self.param_inputs[name] = widget
            self.params_layout.addRow(name, widget)
        # A transformation that locks the performance by default (character) ticks its locks.
        for name in DEFAULT_LOCKS.get(self.transform_combo.currentText(), ()):
            if name in getattr(self, "locks", {}):
                self.locks[name].setChecked(True)

    # -- errors and status ---------------------------------------------------

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    def error_text(self) -> str:
        return self.error_label.text() if self.error_label.isVisible() or self.error_label.text() else ""

    # -- the host ------------------------------------------------------------

    def load_from_host(self) -> bool:
        """Read the plate, keyframes and colour context from the host; False (and the error shown) if it cannot."""
        self.clear_error()
        if self.host is None:
            self.show_error("No host: open Retake from Nuke, Resolve or `retake panel`.")
            return False
        try:
            plate = self.host.plate()
            marks = self.host.keyframes()
            colour = self.host.colour()
        except HostError as error:
            self.plate_ref = None
            self.plate_label.setText("No plate loaded.")
            self.show_error(f"{self.host.name}: {error}")
            self.render_button.setEnabled(False)
            return False
        self.set_plate(plate, colour.notes)
        self.set_keyframes(marks)
        initial = self.host.initial_settings()
        if initial is not None:
            self.apply_settings(initial)
        return True

    def apply_settings(self, settings: RenderSettings) -> None:
        """Show ``settings`` in the controls (e.g. a Nuke node's knobs)."""
        if self.transform_combo.findText(settings.transform) >= 0:
            self.transform_combo.setCurrentText(settings.transform)
        for name, value in settings.params.items():
            widget = self.param_inputs.get(name)
            if isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            elif isinstance(widget, QLineEdit):
                widget.setText(str(value))
        self.motion.setValue(settings.motion)
        self.structure.setValue(settings.structure)
        for name, box in self.locks.items():
            box.setChecked(bool(settings.locks.get(name, False)))
        for combo, value in ((self.format_combo, settings.output_format), (self.quality_combo, settings.quality)):
            index = combo.findData(value)
            if index >= 0:
                combo.setCurrentIndex(index)
        self.output_edit.setText(settings.output_path)

    def set_plate(self, plate: PlateRef, notes: tuple[str, ...] = ()) -> None:
        if self.plate_ref is None or self.plate_ref.path != plate.path:
            self.tracks_path = None   # tracks belong to the plate they were made on
            self.tracks_check.blockSignals(True)
            self.tracks_check.setChecked(False)
            self.tracks_check.setEnabled(False)
            self.tracks_check.blockSignals(False)
        self.plate_ref = plate
        size = f" · {plate.width}×{plate.height}" if plate.width and plate.height else ""
        space = plate.colorspace or "colour space from the file"
        self.plate_label.setText(f"<b>{plate.label or os.path.basename(plate.path)}</b><br>{plate.path}<br>"
                                 f"frames {plate.first}–{plate.last} ({plate.frame_count}){size} · {space}")
        self.colour_label.setText("\n".join(notes))
        self.frame_spin.setValue(plate.first)
        current = self.host.current_frame() if self.host is not None else None
        frame = current if current is not None and plate.first <= current <= plate.last else plate.first
        self.preview_frame.setValue(frame)
        self.progress.setRange(0, plate.frame_count)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m frames")
        self.render_button.setEnabled(True)
        self.request_preview(frame)
        if self.host is not None and not self.output_edit.text():
            self.output_edit.setPlaceholderText(self.host.default_output(plate))

    def _choose_plate(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a frame of the plate", "",
                                              "Images and movies (*.exr *.dpx *.tif *.tiff *.png *.mov *.mp4 *.mxf)")
        if path and self.host is not None and hasattr(self.host, "set_plate_path"):
            self.host.set_plate_path(path)
            self.load_from_host()

    # -- keyframes -----------------------------------------------------------

    # -- prompts and the model ------------------------------------------------

    def _prompt_edited(self, item: QTableWidgetItem) -> None:
        if item.column() == 2:
            self.lint_prompts()

    def lint_prompts(self) -> list[str]:
        """Check every keyframe's prompt; the findings are shown under the table and returned."""
        from engine.generate.prompts import lint_prompt

        lines = []
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 2)
            text = item.text().strip() if item is not None else ""
            findings = lint_prompt(text) if text else []
            if item is not None:
                item.setToolTip("\n".join(f"{f.message} Try: {f.suggestion}" for f in findings))
            for finding in findings[:1]:
                lines.append(f"{self.table.item(row, 0).text()}: {finding.message} Try: {finding.suggestion}")
        self.prompt_label.setText("\n".join(lines))
        self.prompt_label.setVisible(bool(lines))
        return lines

    def _choose_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "The image model folder (diffusers format)")
        if path:
            self.set_model_folder(path)

    def set_model_folder(self, path: str) -> None:
        """The model the engine makes prompt keyframes with (``RETAKE_MODEL_DIR`` of its process)."""
        os.environ["RETAKE_MODEL_DIR"] = path   # the engine child inherits it (engine_process._child_env)
        self._show_model()

    def _show_model(self) -> None:
        folder = os.environ.get("RETAKE_MODEL_DIR")
        self.model_label.setText(f"prompt keyframes: {folder}" if folder else
                                 "prompt keyframes: no model folder set (a keyframe needs an image, or a model)")

    def keyframes(self) -> list[KeyframeMark]:
        marks: list[KeyframeMark] = []
        for row in range(self.table.rowCount()):
            frame = int(self.table.item(row, 0).text())
            prompt = self.table.item(row, 2).text().strip() or None
            image = self.table.item(row, 3).data(Qt.ItemDataRole.UserRole) or None
            reference = self.table.item(row, 4).data(Qt.ItemDataRole.UserRole) or None
            marks.append(KeyframeMark(frame, prompt, image=image, reference=reference))
        return sorted(marks, key=lambda m: m.frame)

    def set_keyframes(self, marks: list[KeyframeMark]) -> None:
        self.table.setRowCount(0)
        shown = sorted(marks, key=lambda m: m.frame)
        for mark in shown[:PANEL_MAX_KEYFRAMES]:
            self._append_row(mark)
        self._update_count(len(shown))
        self.refresh_thumbnails()

    def _file_item(self, path: str | None) -> QTableWidgetItem:
        item = QTableWidgetItem(os.path.basename(path) if path else "—")
        item.setData(Qt.ItemDataRole.UserRole, path or "")
        item.setToolTip(path or "")
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        return item

    def _append_row(self, mark: KeyframeMark) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        frame_item = QTableWidgetItem(str(mark.frame))
        frame_item.setFlags(frame_item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        self.table.setItem(row, 0, frame_item)
        thumb = QLabel()
        thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.table.setCellWidget(row, 1, thumb)
        self.table.setItem(row, 1, QTableWidgetItem(""))
        self.table.setItem(row, 2, QTableWidgetItem(mark.prompt or ""))
        self.table.setItem(row, 3, self._file_item(mark.image))
        self.table.setItem(row, 4, self._file_item(mark.reference))

    def _update_count(self, wanted: int | None = None) -> None:
        count = self.table.rowCount()
        self.count_label.setText(f"{count} / {PANEL_MAX_KEYFRAMES}")
        self.add_button.setEnabled(count < PANEL_MAX_KEYFRAMES)
        if wanted is not None and wanted > PANEL_MAX_KEYFRAMES:
            self.limit_label.setText(f"The host has {wanted} keyframes; the panel takes {PANEL_MAX_KEYFRAMES}, so "
                                     f"only the first {PANEL_MAX_KEYFRAMES} are used. Remove some markers, or write "
                                     "a job file for `retake run` (up to 64).")
            self.limit_label.show()
        elif count >= PANEL_MAX_KEYFRAMES:
            self.limit_label.setText(f"{PANEL_MAX_KEYFRAMES} keyframes is the panel's maximum: remove one to add "
                                     "another.")
            self.limit_label.show()
        else:
            self.limit_label.hide()

    def add_keyframe(self, frame: int) -> bool:
        """Add a keyframe at ``frame`` (inside the plate, not already keyed); False with a message if not."""
        existing = [m.frame for m in self.keyframes()]
        if len(existing) >= PANEL_MAX_KEYFRAMES:
            self._update_count()
            return False
        if frame in existing:
            self.show_error(f"frame {frame} is already a keyframe")
            return False
        if self.plate_ref is not None and not self.plate_ref.first <= frame <= self.plate_ref.last:
            self.show_error(f"frame {frame} is outside the plate ({self.plate_ref.first}–{self.plate_ref.last})")
            return False
        self.clear_error()
        self.set_keyframes(self.keyframes() + [KeyframeMark(frame)])
        return True

    def remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True)
        for row in rows:
            self.table.removeRow(row)
        self._update_count()

    def jump_to_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        if rows:
            frame = int(self.table.item(rows[0], 0).text())
            self.preview_frame.setValue(frame)
            if self.host is not None:
                self.host.show_frame(frame)
            self.request_preview(frame)

    def set_keyframe_file(self, frame: int, column: int, path: str) -> None:
        """Set a keyframe's image (column 3) or reference (column 4)."""
        for row in range(self.table.rowCount()):
            if int(self.table.item(row, 0).text()) == frame:
                self.table.setItem(row, column, self._file_item(path))
                return
        raise KeyError(f"no keyframe at frame {frame}")

    def _choose_file(self, column: int) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        if not rows:
            self.show_error("select a keyframe first")
            return
        path, _ = QFileDialog.getOpenFileName(self, _COLUMNS[column], "", "Images (*.exr *.tif *.tiff *.png *.dpx *.jpg)")
        if path:
            self.set_keyframe_file(int(self.table.item(rows[0], 0).text()), column, path)

    # -- previews ------------------------------------------------------------

    def refresh_thumbnails(self) -> None:
        if self.plate_ref is None or not self.table.rowCount():
            return
        frames = [m.frame for m in self.keyframes()]
        self.previews.request("thumbs", self.plate_ref.path, frames, os.path.join(self.scratch, "thumb.####.png"),
                              size=_THUMB, colorspace=self.plate_ref.colorspace)

    def request_preview(self, frame: int) -> None:
        """Before (the plate) and, once rendered, after (the result) of ``frame``."""
        if self.plate_ref is None:
            return
        self._before = self._after = None
        self.wipe.caption = f"frame {frame}: making the preview…"
        self.wipe.update()
        overlays = [self.tracks_path] if self.tracks_path and self.tracks_check.isChecked() else None
        self.previews.request(f"before:{frame}", self.plate_ref.path, [frame],
                              os.path.join(self.scratch, f"before.{frame}{'.tracks' if overlays else ''}.png"),
                              colorspace=self.plate_ref.colorspace, overlays=overlays)
        if self.prepared is not None and self.state == "done":
            self.previews.request(f"after:{frame}", self.prepared.job_path, [frame],
                                  os.path.join(self.scratch, f"after.{frame}.png"), result=True)

    def track_faces(self) -> None:
        """Track the plate's faces in the engine (off the UI thread); the tracks then show over the preview."""
        if self.plate_ref is None:
            self.show_error("open a plate first: faces are tracked over the plate")
            return
        self.track_button.setEnabled(False)
        self.track_button.setText("Tracking faces…")
        self.previews.track_faces("tracks", self.plate_ref.path, os.path.join(self.scratch, "faces.json"),
                                  colorspace=self.plate_ref.colorspace)

    def _preview_ready(self, tag: str, paths: list) -> None:
        if tag == "tracks":
            self.tracks_path = paths[0]
            self.track_button.setEnabled(True)
            self.track_button.setText("Track faces")
            self.tracks_check.setEnabled(True)
            if self.tracks_check.isChecked():
                self.request_preview(self.preview_frame.value())
            else:
                self.tracks_check.setChecked(True)   # toggled -> a new preview with the tracks
            return
        if tag == "thumbs":
            by_frame = {int(os.path.basename(p).split(".")[1]): p for p in paths}
            for row in range(self.table.rowCount()):
                frame = int(self.table.item(row, 0).text())
                label = self.table.cellWidget(row, 1)
                if frame in by_frame and isinstance(label, QLabel):
                    label.setPixmap(QPixmap(by_frame[frame]).scaled(
                        _THUMB, _THUMB * 9 // 16, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation))
            return
        kind, frame = tag.split(":")
        if kind == "before":
            self._before = paths[0]
        else:
            self._after = paths[0]
        caption = f"frame {frame}" + ("" if self._after else " (render to see the result)")
        self.wipe.set_images(self._before, self._after, caption)

    def _preview_failed(self, tag: str, message: str) -> None:
        if tag == "tracks":
            self.track_button.setEnabled(True)
            self.track_button.setText("Track faces")
            self.show_error(f"face tracking: {message}")
            return
        self.show_error(f"preview: {message}")

    # -- render ------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        # Closing the panel stops its render after the current frame, keeping whole frames.
        if self.worker is not None and self.state == "rendering":
            self.worker.cancel()
        super().closeEvent(event)

    def settings(self) -> RenderSettings:
        params: dict[str, Any] = {}
        for name, widget in self.param_inputs.items():
            params[name] = widget.currentText() if isinstance(widget, QComboBox) else widget.text()
        return RenderSettings(
            transform=self.transform_combo.currentText(),
            params=params,
            motion=self.motion.value(),
            structure=self.structure.value(),
            locks={name: box.isChecked() for name, box in self.locks.items()},
            output_format=self.format_combo.currentData(),
            quality=self.quality_combo.currentData(),
            output_path=self.output_edit.text().strip(),
        )

    def render(self) -> bool:
        """Validate and write the job, then start the engine; False (error shown) if it cannot start."""
        if self.state == "rendering":
            return False
        self.clear_error()
        if self.host is None:
            self.show_error("No host to render for.")
            return False
        try:
            self.prepared = prepare_render(self.host, self.settings(), self.keyframes())
            self.worker = RenderWorker(self.prepared.job_path, self.retake)
            self.worker.event.connect(self._on_event)
            self.worker.finished.connect(self._on_finished)
            self.worker.start()
        except (HostError, JobError, PanelLimitError) as error:
            self.state = "failed"
            self.show_error(str(error))
            self.status_label.setText("Not started.")
            return False
        self.state = "rendering"
        frames = self.prepared.output.last - self.prepared.output.first + 1
        self.progress.setRange(0, frames)
        self.progress.setValue(0)
        self.status_label.setText(f"Starting the engine for {frames} frames…")
        self.render_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        return True

    def cancel(self) -> None:
        if self.worker is not None and self.state == "rendering":
            self.status_label.setText("Cancelling after the current frame…")
            self.worker.cancel()

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.progress.setRange(0, int(event["total"]))
            self.status_label.setText(f"Rendering on {event['device']}, {event['size'][0]}×{event['size'][1]} → "
                                      f"{event['output']}")
        elif kind == "frame":
            self.progress.setValue(int(event["done"]))
            skipped = " (done before)" if event.get("skipped") else ""
            self.status_label.setText(f"frame {event['frame']}{skipped} · {event['done']}/{event['total']} · "
                                      f"{event['fps']:.1f} frames/s · ETA {_eta(event.get('eta_s'))}")
        elif kind == "warning":
            self.colour_label.setText((self.colour_label.text() + "\n" if self.colour_label.text() else "")
                                      + "warning: " + str(event.get("message")))

    def _on_finished(self, event: dict) -> None:
        self.render_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if event.get("event") == "done" and not event.get("cancelled"):
            assert self.prepared is not None and self.host is not None
            try:
                self.last_result = self.host.put_back(self.prepared.output)
            except HostError as error:
                self.state = "failed"
                self.show_error(f"rendered, but {self.host.name} did not take the result: {error}")
            else:
                self.state = "done"
                self.status_label.setText(f"Done: {event['rendered']} rendered, {event['skipped']} already complete "
                                          f"in {event['seconds']:.1f} s. {self.last_result}")
                self.request_preview(self.preview_frame.value())
        elif event.get("cancelled"):
            self.state = "cancelled"
            self.status_label.setText("Cancelled: finished frames are kept; Render again resumes.")
        else:
            self.state = "failed"
            text = str(event.get("message", "the engine stopped"))
            if event.get("hint") and str(event["hint"]) not in text:
                text += f" — {event['hint']}"
            self.show_error(text)
            self.status_label.setText("Failed.")
        self.render_finished.emit(event)
