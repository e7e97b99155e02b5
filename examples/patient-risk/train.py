"""Trains the deterioration-risk model of this example (synthetic data:
the probability of deterioration rises with how far each vital sign is from
normal, roughly as NEWS2 weighs them).

    .cache/venv/bin/python examples/patient-risk/train.py

needs scikit-learn, skl2onnx and onnxruntime; writes deterioration.onnx
(standard scaling + logistic regression, input `vitals: float32[?,5]` in the
order HeartRate, RespiratoryRate, SpO2, SystolicBP, Temperature; outputs
`label` and `probabilities`, zipmap off, opset 17). Seeded: the same file
every run.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def main():
    rng = np.random.default_rng(2017)
    n = 20_000
    sick = rng.random(n) < 0.2
    hr = np.where(sick, rng.normal(112, 18, n), rng.normal(76, 10, n))
    rr = np.where(sick, rng.normal(24, 4, n), rng.normal(16, 2, n))
    spo2 = np.clip(np.where(sick, rng.normal(91, 3, n), rng.normal(97, 1.2, n)), 70, 100)
    sbp = np.where(sick, rng.normal(98, 14, n), rng.normal(124, 12, n))
    temp = np.where(sick, rng.normal(38.4, 0.8, n), rng.normal(36.8, 0.35, n))
    x = np.column_stack([hr, rr, spo2, sbp, temp]).astype(np.float32)
    z = (
        0.05 * np.abs(hr - 75)
        + 0.25 * np.abs(rr - 16)
        + 0.45 * np.maximum(96 - spo2, 0)
        + 0.05 * np.maximum(115 - sbp, 0)
        + 1.2 * np.abs(temp - 36.9)
        - 4.0
    )
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    onx = to_onnx(
        model,
        initial_types=[("vitals", FloatTensorType([None, 5]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path = HERE / "deterioration.onnx"
    path.write_bytes(onx.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, p = session.run(None, {"vitals": x[:5]})
    print(f"{int(y.sum())} of {n} deteriorated; first probabilities {np.round(p[:, 1], 3)}")


if __name__ == "__main__":
    main()
