"""Trains the fraud models this example ships, and writes the test set that
proves Weir scores exactly as Python's onnxruntime does.

    .cache/venv/bin/python examples/fraud-detection/train.py

needs scikit-learn, skl2onnx and onnxruntime (scripts/setup.sh installs
onnxruntime; `pip install scikit-learn skl2onnx` for the rest). It writes,
next to itself:

- fraud-gbdt.onnx      gradient boosting, 50 trees of depth 3
- fraud-logistic.onnx  standard scaling + logistic regression
- testset.ndjson       400 card transactions (the shape of Weir's generator)
- expected-gbdt.ndjson / expected-logistic.ndjson: for each transaction the
  features computed below and Python onnxruntime's label and probability

The features are the plugin's (plugins/fraud-scorer): `features()` below is
the reference, and the test compares Weir's features with it too, so a
training/serving skew fails the build instead of quietly costing accuracy.
Everything is seeded: running it again gives the same files.
"""

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "features.json").read_text())
MERCHANT_RISK = CONFIG["merchant_risk"]
COUNTRY_RISK = CONFIG["country_risk"]
MERCHANTS = list(MERCHANT_RISK)
COUNTRIES = list(COUNTRY_RISK)
HOUR_MS = 3_600_000
NO_PREVIOUS_S = 86_400.0
FEATURES = ["amount", "merchant_risk", "country_risk", "count_1h", "amount_1h", "seconds_since_last"]
START = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def simulate(rng, cards, count):
    """Card transactions in time order; some cards are taken over by a
    fraudster for a burst of quick, large, risky purchases (label 1)."""
    t = START
    stolen = {}
    out = []
    for i in range(count):
        t += timedelta(milliseconds=rng.randint(50, 4000))
        card = f"C{rng.randrange(cards):05d}"
        fraud = False
        if card in stolen and stolen[card] > 0:
            stolen[card] -= 1
            fraud = rng.random() < 0.9
        elif rng.random() < 0.01:
            stolen[card] = rng.randint(2, 6)
        if fraud:
            amount = rng.random() * 2400 + 100
            merchant = rng.choice(["electronics", "jewelry", "gambling", "online-retail", "travel"])
            country = rng.choice(COUNTRIES[-4:] if rng.random() < 0.6 else COUNTRIES)
        else:
            amount = rng.random() ** 3 * 2500 + 1
            merchant = rng.choice(MERCHANTS)
            country = rng.choice(COUNTRIES[:6] if rng.random() < 0.8 else COUNTRIES)
        out.append(
            {
                "transaction_id": f"TX-{i:010d}",
                "card_id": card,
                "EventTime": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
                "amount": round(amount, 2),
                "merchant_category": merchant,
                "country": country,
                "_fraud": int(fraud),
                "_ms": (t - EPOCH) // timedelta(milliseconds=1),
            }
        )
    return out


def features(transactions):
    """The fraud-scorer's features, event by event in arrival order:
    amount, the merchant category's and country's risk, and the card's
    velocity over its earlier transactions with event time in (t - 1 h, t]:
    their count, their amount (summed in whole cents, so the plugin's running
    total is exact) and seconds since the latest at or before t."""
    history = defaultdict(list)
    rows = []
    for tx in transactions:
        t = tx["_ms"]
        seen = history[tx["card_id"]]
        recent = [cents for ts, cents in seen if t - HOUR_MS < ts <= t]
        earlier = [ts for ts, _ in seen if ts <= t]
        since = min((t - max(earlier)) / 1000.0, NO_PREVIOUS_S) if earlier else NO_PREVIOUS_S
        rows.append(
            [
                tx["amount"],
                MERCHANT_RISK.get(tx["merchant_category"], 0.5),
                COUNTRY_RISK.get(tx["country"], 0.5),
                len(recent),
                sum(recent) / 100,
                since,
            ]
        )
        seen.append((t, round(tx["amount"] * 100)))
    return np.array(rows, dtype=np.float64).astype(np.float32)


def export(model, x, path):
    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.write_bytes(onx.SerializeToString())


def main():
    rng = random.Random(20260301)
    train = simulate(rng, cards=400, count=60_000)
    x = features(train)
    y = np.array([tx["_fraud"] for tx in train])
    print(f"training on {len(y)} transactions, {y.sum()} fraudulent")

    gbdt = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=7).fit(x, y)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    export(gbdt, x, HERE / "fraud-gbdt.onnx")
    export(logistic, x, HERE / "fraud-logistic.onnx")

    test = simulate(random.Random(99), cards=40, count=400)
    tx_features = features(test)
    with open(HERE / "testset.ndjson", "w") as f:
        for tx in test:
            f.write(json.dumps({k: v for k, v in tx.items() if not k.startswith("_")}, separators=(",", ":")) + "\n")

    for name in ["gbdt", "logistic"]:
        session = ort.InferenceSession(str(HERE / f"fraud-{name}.onnx"), providers=["CPUExecutionProvider"])
        labels, probabilities = session.run(["label", "probabilities"], {"features": tx_features})
        with open(HERE / f"expected-{name}.ndjson", "w") as f:
            for tx, feats, label, p in zip(test, tx_features, labels, probabilities):
                row = {
                    "transaction_id": tx["transaction_id"],
                    "features": [float(v) for v in feats],
                    "label": int(label),
                    "probability": float(p[1]),
                }
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
        print(f"{name}: {int(labels.sum())} of {len(labels)} test transactions flagged")


if __name__ == "__main__":
    main()
