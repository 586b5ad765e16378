"""hsemotion with a tiny random ONNX model in the published format (one ``input``, one 8-logit
output whose last layer is a Gemm): embedding output, probability mapping, face pass, errors."""
from __future__ import annotations

import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from blemore.extractors import create_extractor  # noqa: E402
from blemore.extractors._hf import WeightsUnavailableError  # noqa: E402
from blemore.extractors.hsemotion import PROB_COLUMNS, HSEmotion, add_feature_output  # noqa: E402

SIDE, CH = 16, 6


def _tiny_onnx(path, n_classes=8, seed=0):
    """Conv 3x3 -> ReLU -> global average pool -> flatten -> Gemm (8 logits), random weights; the
    same interface as the published enet_*.onnx files (input (N, 3, S, S), logits out)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (CH, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, CH).astype(np.float32)
    fc = rng.normal(0, 1.0, (n_classes, CH)).astype(np.float32)
    fb = rng.normal(0, 0.1, n_classes).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["output"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny_enet", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_classes])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fc, "fc"), (fb, "fb"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w, b, fc, fb


def _reference(crops, w, b, fc, fb):
    x = (crops.astype(np.float64) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    x = np.pad(x.transpose(0, 3, 1, 2), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((len(crops), CH, SIDE, SIDE))
    for i in range(3):
        for j in range(3):
            out += np.einsum("ncij,kc->nkij", x[:, :, i:i + SIDE, j:j + SIDE], w[:, :, i, j])
    feats = np.maximum(out + b[None, :, None, None], 0).mean(axis=(2, 3))
    logits = feats @ fc.T + fb
    p = np.exp(logits - logits.max(1, keepdims=True))
    return feats, p / p.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("hse") / "tiny.onnx"
    return path, _tiny_onnx(path)


def test_embedding_and_mapped_probabilities(tiny):
    path, params = tiny
    e = HSEmotion(weights=str(path))
    assert e.columns[:CH] == [f"hse_{i}" for i in range(CH)] and e.dim == CH + 8  # width read from the file
    crops = np.random.default_rng(1).integers(0, 256, (3, SIDE, SIDE, 3), dtype=np.uint8)
    feats, probs = e.predict(crops)
    ref_f, ref_p = _reference(crops, *params)
    np.testing.assert_allclose(feats, ref_f, rtol=1e-4, atol=1e-5)
    # published order Anger, Contempt, Disgust, Fear, Happiness, Neutral, Sadness, Surprise
    order = [0, 2, 3, 4, 6, 5, 1, 7]
    np.testing.assert_allclose(probs, ref_p[:, order], atol=1e-5)
    assert list(PROB_COLUMNS) == ["ang", "disg", "fea", "hap", "sad", "neu", "contempt", "surprise"]
    assert HSEmotion(weights=str(path), output="probs").columns == [f"p_{c}" for c in PROB_COLUMNS]


def test_seven_class_models_have_zero_contempt(tmp_path):
    params = _tiny_onnx(tmp_path / "m7.onnx", n_classes=7)
    e = HSEmotion(weights=str(tmp_path / "m7.onnx"), output="probs")
    crops = np.full((1, SIDE, SIDE, 3), 128, np.uint8)
    _, probs = e.predict(crops)
    _, ref = _reference(crops, *params)
    assert probs[0, PROB_COLUMNS.index("contempt")] == 0.0
    np.testing.assert_allclose(probs[0, [0, 1, 2, 3, 4, 5, 7]], ref[0, [0, 1, 2, 3, 5, 4, 6]], atol=1e-5)


def test_feature_output_is_added_in_memory_only(tiny):
    path, _ = tiny
    model, name = add_feature_output(onnx.load(str(path)))
    assert name == "f" and [o.name for o in model.graph.output] == ["output", "f"]
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["output"]


def test_face_pass_rows(tiny, tmp_path):
    from media_fixtures import make_clip

    path, _ = tiny
    clip = make_clip(tmp_path / "A1_hap_int1_ver1.mp4", seconds=0.4, fps=10, blank=(2,))
    r = create_extractor("hsemotion", weights=str(path)).extract(clip)
    assert r.status == "ok" and r.features.shape == (4, CH + 8)
    assert np.isnan(r.features[2]).all() and np.isfinite(r.features[[0, 1, 3]]).all()
    np.testing.assert_allclose(r.features[[0, 1, 3], CH:].sum(axis=1), 1.0, atol=1e-5)


def test_missing_model_fails_fast_with_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("BLEMORE_HSEMOTION_DIR", raising=False)
    t0 = time.perf_counter()
    assert not HSEmotion.weights_available()
    with pytest.raises(WeightsUnavailableError) as err:
        HSEmotion().load()
    msg = str(err.value)
    assert "enet_b0_8_best_vgaf" in msg and "face-emotion-recognition" in msg and ".hsemotion" in msg
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        HSEmotion(weights=str(tmp_path / "x.onnx")).load()
    assert time.perf_counter() - t0 < 2.0
    monkeypatch.setenv("BLEMORE_HSEMOTION_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    _tiny_onnx(tmp_path / "models" / "enet_b2_8.onnx")
    assert HSEmotion(weights="enet_b2_8").model_path() == tmp_path / "models" / "enet_b2_8.onnx"
    with pytest.raises(ValueError, match="output must be one of"):
        HSEmotion(output="logits")


def test_a_real_efficientnet_exported_like_the_published_files(tmp_path):
    """A tiny EfficientNet (transformers' implementation of the B0 block structure, width 0.25)
    exported to ONNX with the published interface: the embedding is the network's pooled
    feature vector and the probabilities are the softmax of its 8 logits, mapped."""
    import warnings

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    net = transformers.EfficientNetForImageClassification(transformers.EfficientNetConfig(
        image_size=32, width_coefficient=0.25, depth_coefficient=0.2, hidden_dim=320, num_labels=8)).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(pixel_values=x).logits

    path = tmp_path / "enet_tiny.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Logits(net), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                              dynamo=False, opset_version=13)
    except Exception as exc:  # a torch without the TorchScript exporter
        pytest.skip(f"cannot export ONNX here: {exc}")
    e = HSEmotion(weights=str(path))
    assert e.dim == 320 + 8
    crops = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    feats, probs = e.predict(crops)
    x = torch.from_numpy(e.preprocess(crops))
    with torch.no_grad():
        pooled = net.efficientnet(pixel_values=x).pooler_output
        logits = net(pixel_values=x).logits
    np.testing.assert_allclose(feats, pooled.numpy(), rtol=1e-3, atol=1e-4)
    p = torch.softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(probs, p[:, [0, 2, 3, 4, 6, 5, 1, 7]], atol=1e-4)
