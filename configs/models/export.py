#!/usr/bin/env python3
"""Train and export the model fixtures of Synod's engine/model tests.

Run from the repository root with the Debian packages python3-torch and
python3-onnx installed:

    /usr/bin/python3 configs/models/export.py

It writes, next to this script:

  logreg.onnx / logreg.json  logistic regression, 30 standardized features
  mlp.onnx    / mlp.json     MLP 4 -> 8 (tanh) -> 1 (sigmoid)

Everything is seeded, so re-running reproduces the same weights (up to the
torch build). The JSON files hold the same weights in Synod's model format
(engine/model/json.go) for comparison with the ONNX loader.
"""

import json
import os

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(7)
rng = np.random.default_rng(7)


def train(model, x, y, epochs, lr, weight_decay):
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCELoss()
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(model(x).squeeze(1), y)
        loss.backward()
        opt.step()
    return float(loss)


def export(model, n_in, name):
    path = os.path.join(HERE, name + ".onnx")
    torch.onnx.export(model, torch.zeros(1, n_in), path,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      opset_version=13)
    onnx.checker.check_model(onnx.load(path))
    return path


def dense(layer, activation, interval):
    return {
        "weights": layer.weight.detach().double().numpy().round(8).tolist(),
        "bias": layer.bias.detach().double().numpy().round(8).tolist(),
        "activation": activation,
        "interval": interval,
    }


# Logistic regression: 30 standardized features, labels drawn from a
# logistic model with small true weights (|logit| stays well inside [-8, 8]).
n, d = 4000, 30
w_true = rng.normal(0, 0.25, d)
x = rng.normal(0, 1, (n, d))
p = 1 / (1 + np.exp(-(x @ w_true + 0.3)))
y = (rng.random(n) < p).astype(np.float32)
logreg = torch.nn.Sequential(torch.nn.Linear(d, 1), torch.nn.Sigmoid())
loss = train(logreg, torch.tensor(x, dtype=torch.float32), torch.tensor(y), 300, 0.05, 1e-3)
export(logreg, d, "logreg")
logits = x @ logreg[0].weight.detach().double().numpy()[0] + float(logreg[0].bias)
print(f"logreg: loss {loss:.4f}, training logits in [{logits.min():.2f}, {logits.max():.2f}]")
with open(os.path.join(HERE, "logreg.json"), "w") as f:
    json.dump({"name": "logreg", "inputs": d,
               "layers": [dense(logreg[0], "sigmoid", [-8, 8])]}, f, indent=1)
    f.write("\n")

# MLP 4 -> 8 -> 1 on raw (unstandardized) features: the JSON fixture carries
# the standardization, the network itself was trained on standardized data.
n, d = 4000, 4
mean = np.array([50.0, 1.5, -3.0, 10.0])
std = np.array([12.0, 0.5, 2.0, 4.0])
z = rng.normal(0, 1, (n, d))
y = ((z[:, 0] * z[:, 1] + np.sin(2 * z[:, 2]) - 0.5 * z[:, 3]) > 0).astype(np.float32)
mlp = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
loss = train(mlp, torch.tensor(z, dtype=torch.float32), torch.tensor(y), 300, 0.03, 2e-2)
export(mlp, d, "mlp")
with torch.no_grad():
    h = mlp[0](torch.tensor(z, dtype=torch.float32))
    o = mlp[2](torch.tanh(h))
print(f"mlp: loss {loss:.4f}, hidden pre-activations in [{float(h.min()):.2f}, {float(h.max()):.2f}], "
      f"output logits in [{float(o.min()):.2f}, {float(o.max()):.2f}]")
with open(os.path.join(HERE, "mlp.json"), "w") as f:
    json.dump({"name": "mlp", "inputs": d,
               "standardize": {"mean": mean.tolist(), "std": std.tolist()},
               "layers": [dense(mlp[0], "tanh", [-6, 6]), dense(mlp[2], "sigmoid", [-8, 8])]}, f, indent=1)
    f.write("\n")
