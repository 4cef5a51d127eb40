#!/usr/bin/env python3
"""make_respacing_ddim10.py -- writes respacing_ddim10/, a model folder whose model.json says
"timestep_respacing": "ddim10", with the sample improved-diffusion's own ddim_sample_loop draws from it: the test
runs `diffusharp sample --sampler ddim` on it with no step flag and must get the same images (the folder's
respacing, t = 0, 100, ..., 900, not the section spacing "10", t = 0, 111, ..., 999).

Versions: openai/improved-diffusion 1bc7bbbdc414d83d4abf2ad8cc1446dc36c4e4d5 (its own unet.py, respace.py,
script_util.py, gaussian_diffusion.py; dist_util and its mpi4py are not imported), PyTorch 1.13.1 (CPU), numpy;
safetensors: the pure-Python writer of shared/diffusers/stubs. Run:
    git -C /path/to/improved-diffusion archive HEAD improved_diffusion | tar -x -C /tmp/idiff
    . shared/diffusers/env.sh && /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/make_respacing_ddim10.py /tmp/idiff

The model: improved-diffusion's UNetModel, 1×8×8 gray, 32 channels, channel_mult (1, 2), one res block per level,
attention at downsample rate 2 (pixel size 4) and in the middle, scale-shift norm, unconditional, fixed variance.
Weights: PyTorch's default init under torch.manual_seed(0), then every parameter += 0.02·N(0, 1) (so the
zero-initialised output convolutions are not zero), then 300 Adam steps (lr 2e-3, batch 16) of improved-diffusion's
own training_losses (uniform t over the full T = 1000 process) on smooth synthetic images
x_0 = 0.7·sin(a·x + b·y + φ) with a, b ~ U(0.3, 1.2), φ ~ U(0, 2π): a random network's ε is so far off that almost
every x_0 prediction is clipped and the sample saturates at ±1; a roughly trained one gives a sample in the open
interval that tests the arithmetic of every step.
The diffusion: create_gaussian_diffusion with model_and_diffusion_defaults()'s settings, T = 1000, linear schedule,
timestep_respacing "ddim10". Noise x_T: (2, 1, 8, 8) ~ N(0, 1) drawn after the weights.
Writes respacing_ddim10/{model.safetensors, model.json, noise.npy, expected.npy} (expected: ddim_sample_loop's x_0,
clip_denoised=True, eta 0, float32 (2, 1, 8, 8)).
"""
import json
import os
import sys

import numpy as np
import torch as th

REF = sys.argv[1] if len(sys.argv) > 1 else "/tmp/idiff"
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "respacing_ddim10")
sys.path.insert(0, REF)

from improved_diffusion.script_util import create_gaussian_diffusion  # noqa: E402
from improved_diffusion.unet import UNetModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

th.manual_seed(0)
model = UNetModel(
    in_channels=1, model_channels=32, out_channels=1, num_res_blocks=1, attention_resolutions=(2,), dropout=0.0,
    channel_mult=(1, 2), conv_resample=True, dims=2, num_classes=None, use_checkpoint=False, num_heads=1,
    num_heads_upsample=-1, use_scale_shift_norm=True,
)
with th.no_grad():
    for p in model.parameters():
        p.add_(0.02 * th.randn_like(p))

flags = dict(
    image_size=8, num_channels=32, num_res_blocks=1, num_heads=1, num_heads_upsample=-1, attention_resolutions="4",
    dropout=0.0, learn_sigma=False, sigma_small=False, class_cond=False, diffusion_steps=1000, noise_schedule="linear",
    timestep_respacing="ddim10", use_kl=False, predict_xstart=False, rescale_timesteps=True, rescale_learned_sigmas=True,
    use_checkpoint=False, use_scale_shift_norm=True, in_channels=1, channel_mult="1,2",
)
diffusion = create_gaussian_diffusion(
    steps=flags["diffusion_steps"], learn_sigma=flags["learn_sigma"], sigma_small=flags["sigma_small"],
    noise_schedule=flags["noise_schedule"], use_kl=flags["use_kl"], predict_xstart=flags["predict_xstart"],
    rescale_timesteps=flags["rescale_timesteps"], rescale_learned_sigmas=flags["rescale_learned_sigmas"],
    timestep_respacing=flags["timestep_respacing"],
)

# Rough training on the full process (the respaced one shares its alphas at the kept steps).
full = create_gaussian_diffusion(steps=1000, noise_schedule="linear", rescale_timesteps=True, timestep_respacing="")
yy, xx = th.meshgrid(th.arange(8.0), th.arange(8.0), indexing="ij")
opt = th.optim.Adam(model.parameters(), lr=2e-3)
model.train()
for step in range(300):
    a, b = th.rand(16, 1, 1, 1) * 0.9 + 0.3, th.rand(16, 1, 1, 1) * 0.9 + 0.3
    phi = th.rand(16, 1, 1, 1) * 6.283185307
    x0 = 0.7 * th.sin(a * xx + b * yy + phi)
    t = th.randint(0, 1000, (16,))
    loss = full.training_losses(model, x0, t)["loss"].mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == 299:
        print("step", step, "loss", float(loss))
model.eval()

assert diffusion.timestep_map == list(range(0, 1000, 100)), diffusion.timestep_map

noise = th.randn(2, 1, 8, 8)
with th.no_grad():
    sample = diffusion.ddim_sample_loop(model, (2, 1, 8, 8), noise=noise, clip_denoised=True, eta=0.0)

os.makedirs(OUT, exist_ok=True)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "model.safetensors"))
with open(os.path.join(OUT, "model.json"), "w") as f:
    json.dump(flags, f, indent=2)
    f.write("\n")
np.save(os.path.join(OUT, "noise.npy"), noise.numpy().astype(np.float32))
np.save(os.path.join(OUT, "expected.npy"), sample.numpy().astype(np.float32))
print("saturated (|x| > 0.999):", float((sample.abs() > 0.999).float().mean()))
print("wrote", OUT, "timesteps", diffusion.timestep_map, "sample mean", float(sample.mean()), "std", float(sample.std()))
