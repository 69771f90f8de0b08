"""Exporting trained models to portable formats: :func:`export_onnx`."""

from __future__ import annotations

from runyard.export.onnx import DEFAULT_TOLERANCE, ExportReport, export_onnx

__all__ = ["DEFAULT_TOLERANCE", "ExportReport", "export_onnx"]
