#!/usr/bin/env python3
"""bench_latent_torch.py -- PyTorch (CPU) reference timing of one text-to-image latent training step of
train-latent's default models, for comparison with `diffusharp bench latent` (same step, same configs).

Comparison tool only. The models are diffusers 0.27.2's UNet2DConditionModel and transformers' CLIPTextModel, built
from the config.json files that `diffusharp bench latent --write-configs DIR` writes. Step (model.train()): token ids
(B, L) uniform in the vocabulary -> text encoder -> last_hidden_state; t ~ U{0..999}; x_t = sqrt(a) x0 + sqrt(1-a) eps
with the scaled_linear betas (0.00085 -> 0.012); eps-MSE; backward through both; torch.optim.AdamW(lr=1e-4,
weight_decay=0.01) over both; zero_grad(set_to_none=True). Sampling step: one no-grad eval forward of 2B (the
guidance pair). Output: JSON lines with the names of `diffusharp bench latent --json`.

    . ../shared/diffusers/env.sh
    OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench_latent_torch.py --configs DIR
"""
import argparse, json, os, resource, statistics, time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with open(os.path.join(args.configs, "unet", "config.json")) as f:
        unet = UNet2DConditionModel.from_config(json.load(f))
    with open(os.path.join(args.configs, "text_encoder", "config.json")) as f:
        tc = json.load(f)
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in tc.items() if k not in ("architectures", "torch_dtype", "transformers_version")}))
    B, L = args.batch, text.config.max_position_embeddings
    C, S = unet.config.in_channels, unet.config.sample_size
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    ac = torch.cumprod(1 - betas, 0)
    ids = torch.randint(0, text.config.vocab_size, (B, L))
    x0 = torch.randn(B, C, S, S)

    def train_step():
        t = torch.randint(0, 1000, (B,))
        eps = torch.randn_like(x0)
        a = ac[t].view(B, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        ctx = text(ids).last_hidden_state
        out = unet(xt, t, ctx).sample
        loss = torch.nn.functional.mse_loss(out, eps)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    xT = torch.randn(2 * B, C, S, S)
    ids2 = ids.repeat(2, 1)

    def sample_step():
        with torch.no_grad():
            ctx = text(ids2).last_hidden_state
            unet(xT, torch.tensor([500]), ctx)

    def timed(fn, n):
        out = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1000)
        return out

    unet.train(); text.train()
    for _ in range(args.warmup):
        train_step()
    tr = timed(train_step, args.steps)
    unet.eval(); text.eval()
    for _ in range(args.warmup):
        sample_step()
    sa = timed(sample_step, args.sample_steps)
    for name, v, extra in (("latent_train_step_ms", tr, {}), ("latent_sample_step_ms", sa, {"cfg_pair": True})):
        print(json.dumps({"name": name, "value": round(statistics.median(v), 2), "unit": "ms", "min": round(min(v), 2),
                          "max": round(max(v), 2), "samples": len(v), "batch": B, **extra}))
    print(json.dumps({"name": "peak_rss_mb", "value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "unit": "MB"}))


if __name__ == "__main__":
    main()
