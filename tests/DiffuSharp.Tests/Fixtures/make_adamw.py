#!/usr/bin/env python3
"""make_adamw.py -- writes adamw_reference.json, a torch.optim.AdamW reference trajectory for the
DiffuSharp AdamW tests. Fixture generator only: PyTorch is never a runtime dependency of DiffuSharp.

Run (from the repository root; deterministic, CPU, takes a second):
    python3 tests/DiffuSharp.Tests/Fixtures/make_adamw.py
    # -> tests/DiffuSharp.Tests/Fixtures/adamw_reference.json  (or give another output path)

Problem (float32 throughout):
    torch.manual_seed(0); W = randn(3, 5); b = randn(5); X = randn(7, 3); Y = randn(7, 5)
    (drawn in that order from the default CPU generator)
    loss(W, b) = mean((X @ W + b - Y)^2)          (mean over all 7*5 elements)
Runs, each from the same initial W, b, 20 steps of
    torch.optim.AdamW([W, b], lr, betas=(0.9, 0.999), eps=1e-8, weight_decay,
                      amsgrad=False, foreach=False, maximize=False)
    "wd0.01_lr1e-2": lr=1e-2, weight_decay=1e-2
    "wd0.1_lr1e-3":  lr=1e-3, weight_decay=0.1
A step: zero grads, loss.backward(), record grads, opt.step(), record params.

JSON layout (all tensors as flat row-major lists of the float32 values, written as the shortest
repr of the equal float64, so parsing to double and casting to float32 is exact):
    script, torch_version, description, algorithm
    problem: {X [7,3], Y [7,5], W0 [3,5], b0 [5], shapes}
    config, steps              = the first run (kept at top level for convenience)
    runs: [{name, config, steps}, ...]   both runs, runs[0] identical to the top-level one
    steps[i] = {step (1-based), loss (before the step), grad_W, grad_b (the gradients the
               optimizer used in this step), W, b (parameters after the step)}
"""
import json
import os
import sys

import torch

OUT_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adamw_reference.json")
STEPS = 20

ALGORITHM = (
    "torch 1.13 _single_tensor_adamw, per parameter tensor, step t = 1, 2, ...: "
    "p *= (1 - lr*wd); m = beta1*m + (1-beta1)*g; v = beta2*v + (1-beta2)*g*g; "
    "bc1 = 1 - beta1^t; bc2 = 1 - beta2^t (Python float64 scalars); "
    "p += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps). m, v start at 0. "
    "Tensor ops run in float32 with the float64 scalars rounded to float32 when applied "
    "(mul_(1-lr*wd), mul_(beta1).add_(g, alpha=1-beta1), mul_(beta2).addcmul_(g, g, value=1-beta2), "
    "(v.sqrt() / sqrt(bc2)).add_(eps), p.addcdiv_(m, denom, value=-lr/bc1))."
)


def flat(t):
    return t.detach().reshape(-1).tolist()


def run(W0, b0, X, Y, lr, wd):
    W = W0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([W, b], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd,
                            amsgrad=False, foreach=False, maximize=False)
    steps = []
    for i in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = ((X @ W + b - Y) ** 2).mean()
        loss.backward()
        rec = {"step": i + 1, "loss": loss.item(), "grad_W": flat(W.grad), "grad_b": flat(b.grad)}
        opt.step()
        rec["W"] = flat(W)
        rec["b"] = flat(b)
        steps.append(rec)
    config = {"lr": lr, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": wd, "amsgrad": False,
              "foreach": False, "maximize": False, "steps": STEPS, "dtype": "float32"}
    return config, steps


def replay_numpy(doc):
    """Replays every run's recorded gradients through a float32 numpy AdamW written from ALGORITHM
    (what the C# test does); returns the largest |param - recorded param| over all steps."""
    import math
    import numpy as np
    f32 = np.float32
    worst = 0.0
    for r in doc["runs"]:
        c = r["config"]
        lr, wd, eps = c["lr"], c["weight_decay"], c["eps"]
        b1, b2 = c["betas"]
        p = {"W": np.array(doc["problem"]["W0"], f32), "b": np.array(doc["problem"]["b0"], f32)}
        m = {k: np.zeros_like(v) for k, v in p.items()}
        v2 = {k: np.zeros_like(v) for k, v in p.items()}
        for s in r["steps"]:
            t = s["step"]
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
            for k in ("W", "b"):
                g = np.array(s["grad_" + k], f32)
                p[k] = p[k] * f32(1 - lr * wd)
                m[k] = m[k] * f32(b1) + g * f32(1 - b1)
                v2[k] = v2[k] * f32(b2) + (g * g) * f32(1 - b2)
                denom = np.sqrt(v2[k]) / f32(math.sqrt(bc2)) + f32(eps)
                p[k] = p[k] + f32(-lr / bc1) * (m[k] / denom)
                worst = max(worst, float(np.abs(p[k] - np.array(s[k], f32)).max()))
    return worst


def compact_numbers(text):
    """Put arrays that hold only numbers on one line (the file stays readable and small)."""
    import re
    return re.sub(r"\[\n([-+0-9.eE,\s]+)\]",
                  lambda mo: "[" + ", ".join(x.strip() for x in mo.group(1).split(",")) + "]", text)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT_DEFAULT
    torch.set_num_threads(1)
    torch.manual_seed(0)
    W0 = torch.randn(3, 5)
    b0 = torch.randn(5)
    X = torch.randn(7, 3)
    Y = torch.randn(7, 5)
    assert W0.dtype == torch.float32

    runs = []
    for name, lr, wd in (("wd0.01_lr1e-2", 1e-2, 1e-2), ("wd0.1_lr1e-3", 1e-3, 0.1)):
        config, steps = run(W0, b0, X, Y, lr, wd)
        runs.append({"name": name, "config": config, "steps": steps})

    doc = {
        "script": "tests/DiffuSharp.Tests/Fixtures/make_adamw.py",
        "torch_version": torch.__version__,
        "description": ("torch.optim.AdamW reference: W [3,5], b [5], loss = mean((X@W + b - Y)^2), "
                        "20 steps per run; grads recorded before each step, params after it. "
                        "Top-level config/steps = runs[0]."),
        "algorithm": ALGORITHM,
        "problem": {"seed": 0, "draw_order": ["W0", "b0", "X", "Y"],
                    "shapes": {"W": [3, 5], "b": [5], "X": [7, 3], "Y": [7, 5]},
                    "loss": "mean((X @ W + b - Y)^2)",
                    "X": flat(X), "Y": flat(Y), "W0": flat(W0), "b0": flat(b0)},
        "config": runs[0]["config"],
        "steps": runs[0]["steps"],
        "runs": runs,
    }
    text = compact_numbers(json.dumps(doc, indent=1))
    assert json.loads(text) == doc
    print("numpy float32 replay of the recorded gradients: max |param - torch param| = %.3e"
          % replay_numpy(doc))
    with open(out, "w") as f:
        f.write(text + "\n")
    print("wrote %s (%d bytes)" % (out, len(text) + 1))


if __name__ == "__main__":
    main()
