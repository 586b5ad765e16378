"""``hsemotion``: HSEmotion (EmotiEffLib) AffectNet facial-expression networks on the face-mesh
crop, run with ``onnxruntime`` from the published ONNX files.

The published models (Savchenko's ``face-emotion-recognition`` repository, also used by the
``hsemotion-onnx`` and ``emotiefflib`` packages) are EfficientNet-B0 / B2 networks trained on
AffectNet, shipped as ONNX graphs with one input (``(N, 3, S, S)`` float32; S = 224 for the
``enet_b0_*`` models, 260 for ``enet_b2_*``) and one output: the 8 logits in the order
Anger, Contempt, Disgust, Fear, Happiness, Neutral, Sadness, Surprise (7 for ``*_7`` models,
without Contempt). Pre-processing (the packages' own): resize the face crop to S x S, scale
to [0, 1], normalise with the ImageNet mean/std.

Per analysed frame (the face pass of :mod:`blemore.extractors._face`; NaN rows without a face),
``output``:

* ``probs``: the softmax probabilities mapped to blemore's codes ``ang, disg, fea, hap, sad, neu``
  followed by the two classes blemore has no code for, ``contempt`` and ``surprise`` (8 columns;
  contempt is 0 for 7-class models);
* ``embedding``: the input of the final classifier layer (1280-d for B0, 1408-d for B2), exposed
  by adding that tensor as a second output of the graph when the model is loaded (the ``onnx``
  package edits the graph in memory; the file is not changed);
* ``both`` (default): embedding then probabilities.

Weights (``weights``): a local ``.onnx`` file, or a published model name (default
``enet_b0_8_best_vgaf``; also ``enet_b0_8_best_afew``, ``enet_b0_8_va_mtl``, ``enet_b2_8``,
``enet_b2_7``) looked up as ``<name>.onnx`` in ``$BLEMORE_HSEMOTION_DIR``, ``~/.hsemotion``
(where ``hsemotion-onnx`` caches them) and ``~/.emotiefflib``. Nothing is downloaded: a missing
file fails at once with the URL to fetch it from.

Needs the optional extra ``pip install -e .[faces]`` (``onnxruntime`` and ``onnx``; both install
beside numpy 2 and mediapipe's ``protobuf<5``).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blemore.extractors._face import FaceExtractor, FacePassConfig, crop_face, face_box
from blemore.extractors._hf import ExtractorUnavailableError, WeightsUnavailableError
from blemore.extractors.base import register_extractor
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = ["HSEmotionConfig", "HSEmotion", "HSEMOTION_CLASSES", "PROB_COLUMNS", "MODELS", "model_url",
           "add_feature_output"]

#: the published models' output order (8-class models; 7-class ones lack Contempt)
HSEMOTION_CLASSES = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
#: blemore's six codes, then the two classes without a blemore code
PROB_COLUMNS = ("ang", "disg", "fea", "hap", "sad", "neu", "contempt", "surprise")
_TO_COLUMN = {"Anger": "ang", "Disgust": "disg", "Fear": "fea", "Happiness": "hap", "Sadness": "sad",
              "Neutral": "neu", "Contempt": "contempt", "Surprise": "surprise"}
#: published model name -> (input side, embedding width)
MODELS = {"enet_b0_8_best_vgaf": (224, 1280), "enet_b0_8_best_afew": (224, 1280), "enet_b0_8_va_mtl": (224, 1280),
          "enet_b2_8": (260, 1408), "enet_b2_7": (260, 1408)}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_OUTPUTS = ("both", "probs", "embedding")
INSTALL_HINT = "pip install -e '.[faces]' (onnxruntime and onnx)"


def model_url(name: str) -> str:
    return (f"https://github.com/av-savchenko/face-emotion-recognition/raw/main/models/affectnet_emotions/onnx/"
            f"{name}.onnx")


def _search_dirs() -> list[Path]:
    dirs = [Path(os.environ["BLEMORE_HSEMOTION_DIR"]).expanduser()] if os.environ.get("BLEMORE_HSEMOTION_DIR") else []
    return dirs + [Path.home() / ".hsemotion", Path.home() / ".emotiefflib"]


def add_feature_output(model) -> tuple[object, str]:
    """Add the input of the final classifier layer (``Gemm``, or ``MatMul`` + ``Add``) of an ONNX
    ``ModelProto`` as a graph output; returns ``(model, feature tensor name)``."""
    import onnx

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name for i in graph.initializer}
    node = producers.get(graph.output[0].name)
    feat = None
    for _ in range(4):  # walk back through Identity / Add (bias) / Flatten-free heads
        if node is None:
            break
        if node.op_type == "Gemm" or node.op_type == "MatMul":
            feat = node.input[0]
            break
        if node.op_type in ("Add", "Identity"):
            data = [i for i in node.input if i not in inits]
            node = producers.get(data[0]) if data else None
            continue
        break
    if feat is None:
        raise WeightsError("cannot find the final classifier layer (Gemm or MatMul) feeding the model's output")
    if feat not in {o.name for o in graph.output}:
        graph.output.append(onnx.helper.make_empty_tensor_value_info(feat))
    return model, feat


def _classifier_width(model) -> int | None:
    """The embedding width from the final layer's weight initializer (None when not found)."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type in ("Add", "Identity"):
        data = [i for i in node.input if i not in inits]
        node = producers.get(data[0]) if data else None
    if node is None or node.op_type not in ("Gemm", "MatMul") or node.input[1] not in inits:
        return None
    w = inits[node.input[1]]
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    return int(w[1] if (node.op_type == "Gemm" and trans_b) else w[0])


@dataclass
class HSEmotionConfig(FacePassConfig):
    """``weights``: a published model name or a local ``.onnx`` file. ``output``: both | probs |
    embedding. ``crop_scale``: face box side over the landmark extent."""

    weights: str = "enet_b0_8_best_vgaf"
    output: str = "both"
    crop_scale: float = 1.1

    def __post_init__(self) -> None:
        if self.output not in _OUTPUTS:
            raise SettingsError(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        if not self.weights:
            raise SettingsError("weights must name a published HSEmotion model or an .onnx file")


@register_extractor
class HSEmotion(FaceExtractor):
    """HSEmotion AffectNet networks (ONNX) on the face-mesh crop: embedding + 8 mapped probabilities."""

    name = "hsemotion"
    version = "1"
    config_class = HSEmotionConfig
    default_weights = "enet_b0_8_best_vgaf"
    description = ("HSEmotion/EmotiEffLib AffectNet EfficientNet (ONNX) on the face-mesh crop: embedding + "
                   "ang..neu, contempt, surprise probabilities [needs .[faces]]")

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self._session = None
        self._side: int | None = None
        self._width: int | None = None
        self._classes: tuple[str, ...] = HSEMOTION_CLASSES

    # -- weights ---------------------------------------------------------------------------------
    def model_path(self) -> Path:
        """The ``.onnx`` file for ``weights``; a clear error (with the download URL) when absent."""
        spec = str(self.config.weights)
        p = Path(spec).expanduser()
        if p.is_file():
            return p
        if spec.endswith(".onnx") or os.sep in spec:
            raise WeightsUnavailableError(f"{self.name}: weights file {spec!r} does not exist")
        tried = [d / f"{spec}.onnx" for d in _search_dirs()]
        for f in tried:
            if f.is_file():
                return f
        known = "" if spec in MODELS else f" ({spec!r} is not one of the published names {', '.join(MODELS)})"
        raise WeightsUnavailableError(
            f"{self.name}: model {spec!r} not found{known}; looked for {', '.join(map(str, tried))}. Download it on a "
            f"machine with internet ({model_url(spec)}) into one of those folders (or set BLEMORE_HSEMOTION_DIR), "
            f"or pass a file: --set hsemotion.weights=PATH.onnx")

    @classmethod
    def weights_available(cls) -> bool:
        if importlib.util.find_spec("onnxruntime") is None:
            return False
        try:
            cls().model_path()
        except WeightsUnavailableError:
            return False
        return True

    # -- shape -----------------------------------------------------------------------------------
    def _embedding_width(self) -> int:
        if self._width is None:
            spec = str(self.config.weights)
            width = MODELS.get(spec, (224, 1280))[1]
            try:
                import onnx

                path = self.model_path()
                width = _classifier_width(onnx.load(str(path), load_external_data=False)) or width
            except Exception:  # not installed or not found: load() will say so
                pass
            self._width = int(width)
        return self._width

    @property
    def columns(self) -> list[str]:
        probs = [f"p_{c}" for c in PROB_COLUMNS]
        if self.config.output == "probs":
            return probs
        emb = [f"hse_{i}" for i in range(self._embedding_width())]
        return emb if self.config.output == "embedding" else emb + probs

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> None:
        if self._session is None:
            missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
            if missing:
                raise ExtractorUnavailableError(f"{self.name} needs {' and '.join(missing)}: {INSTALL_HINT}")
            import onnx
            import onnxruntime as ort

            path = self.model_path()
            model = onnx.load(str(path))
            model, self._feat_name = add_feature_output(model)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # parallelism comes from worker processes
            opts.log_severity_level = 3
            self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            inp = self._session.get_inputs()[0]
            self._input_name = inp.name
            side = inp.shape[-1] if isinstance(inp.shape[-1], int) else MODELS.get(str(self.config.weights),
                                                                                    (224, 0))[0]
            self._side = int(side)
            self._logits_name = self._session.get_outputs()[0].name
            n_out = self._session.get_outputs()[0].shape[-1]
            if isinstance(n_out, int) and n_out not in (7, 8):
                raise WeightsError(f"{self.name}: {path} outputs {n_out} classes; expected the 8 (or 7) AffectNet ones")
            self._classes = HSEMOTION_CLASSES if n_out != 7 else tuple(c for c in HSEMOTION_CLASSES
                                                                         if c != "Contempt")
            self._width = _classifier_width(model) or self._width
        super().load()

    # -- computing -------------------------------------------------------------------------------
    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 RGB crops -> ``(N, 3, S, S)`` float32 (scaled, ImageNet-normalised)."""
        x = (np.asarray(crops, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(N, E)`` and mapped probabilities ``(N, 8)`` for RGB crops ``(N, S, S, 3)``."""
        self.load()
        feats, logits = self._session.run([self._feat_name, self._logits_name],
                                          {self._input_name: self.preprocess(crops)})
        feats = np.asarray(feats, np.float32).reshape(len(crops), -1)
        logits = np.asarray(logits, np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        out = np.zeros((len(crops), len(PROB_COLUMNS)), np.float32)
        for j, cls in enumerate(self._classes):
            out[:, PROB_COLUMNS.index(_TO_COLUMN[cls])] = p[:, j]
        return feats, out

    def frame_features(self, frame: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        if landmarks is None:
            return self.empty_row()
        self.load()
        crop = crop_face(frame, face_box(landmarks=landmarks, scale=self.config.crop_scale), self._side)
        feats, probs = self.predict(crop[None])
        if self.config.output == "probs":
            return probs[0]
        if self.config.output == "embedding":
            return feats[0]
        return np.concatenate([feats[0], probs[0]])
