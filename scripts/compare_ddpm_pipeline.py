# Checks that a DDPMPipeline folder written by `diffusharp train --unet-preset/--unet-config` (<run>/model/) samples in
# diffusers 0.27.2 as in DiffuSharp: diffusers' DDPMPipeline.from_pretrained loads it, and DDPMPipeline.__call__ itself
# runs with the folder's DDPMScheduler and with DDIMScheduler.from_config of it (eta 0), from x_T = torch.randn (seeded)
# and, for DDPM's stochastic steps, recorded noise: randn_tensor in pipeline_ddpm and scheduling_ddpm is replaced by a
# function handing out the pre-drawn tensors, which are written as .npy and given to
# `diffusharp sample --model FOLDER --sampler ddpm|ddim --steps S --noise X_T.npy --step-noise STEPS.npy --save-npy`.
# Both outputs are the pipeline's image, (x / 2 + 0.5).clamp(0, 1); ours is converted from the saved [-1, 1] array.
# Prints relative L2 (‖ours − diffusers‖ / ‖diffusers‖) and max |difference| per scheduler; exits 1 above --tol.
#
#   . ../shared/diffusers/env.sh && /usr/bin/python3 scripts/compare_ddpm_pipeline.py runs/ddpm-fm/model [--steps 50 --n 8]
import argparse, os, subprocess, sys, tempfile
import numpy as np
import torch
import diffusers
from diffusers import DDPMPipeline, DDIMScheduler
import diffusers.pipelines.ddpm.pipeline_ddpm as pipeline_ddpm
import diffusers.schedulers.scheduling_ddpm as scheduling_ddpm

ap = argparse.ArgumentParser()
ap.add_argument('folder', help='a diffusers DDPMPipeline folder (model_index.json, unet/, scheduler/)')
ap.add_argument('--steps', type=int, default=50)
ap.add_argument('--n', type=int, default=8)
ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--tol', type=float, default=1e-4, help='largest relative L2 accepted')
ap.add_argument('--work', default=None, help='folder for the .npy files (default: a temporary one)')
a = ap.parse_args()

torch.set_num_threads(2)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pipe = DDPMPipeline.from_pretrained(a.folder)
pipe.set_progress_bar_config(disable=True)
unet = pipe.unet.eval()
c, s = unet.config.in_channels, unet.config.sample_size
g = torch.Generator().manual_seed(a.seed)
x_T = torch.randn(a.n, c, s, s, generator=g)
step_noise = torch.randn(a.steps, a.n, c, s, s, generator=g)
work = a.work or tempfile.mkdtemp(prefix='diffusharp-ddpm-compare-')
os.makedirs(work, exist_ok=True)
np.save(os.path.join(work, 'x_T.npy'), x_T.numpy().astype(np.float32))
np.save(os.path.join(work, 'step_noise.npy'), step_noise.numpy().astype(np.float32))
print(f'diffusers {diffusers.__version__}, torch {torch.__version__}; {a.folder}: UNet2DModel {list(unet.config.block_out_channels)}, '
      f'{c}×{s}×{s}, {sum(p.numel() for p in unet.parameters()):,} parameters; {a.n} samples, {a.steps} steps; files in {work}')

def diffusers_run(scheduler):
    calls = {'step': 0}
    def first_noise(shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == tuple(x_T.shape), shape
        return x_T.clone()
    def next_step_noise(shape, generator=None, device=None, dtype=None, layout=None):
        i = calls['step']
        calls['step'] += 1
        return step_noise[i].clone()
    pipeline_ddpm.randn_tensor, scheduling_ddpm.randn_tensor = first_noise, next_step_noise
    pipe.scheduler = scheduler
    with torch.no_grad():
        out = pipe(batch_size=a.n, num_inference_steps=a.steps, output_type='np').images   # (N, H, W, C) in [0, 1]
    return out.astype(np.float64), calls['step']

def ours(sampler):
    npy = os.path.join(work, f'ours_{sampler}.npy')
    cmd = [os.path.join(root, 'diffusharp'), 'sample', '--model', a.folder, '--sampler', sampler, '--steps', str(a.steps),
           '--noise', os.path.join(work, 'x_T.npy'), '--step-noise', os.path.join(work, 'step_noise.npy'),
           '--batch', str(a.n), '--save-npy', npy, '--out', os.path.join(work, f'ours_{sampler}.png')]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)    # stderr: the progress lines
    if r.returncode != 0:
        sys.exit(f'{" ".join(cmd)} failed ({r.returncode}):\n{r.stderr}')
    x = np.load(npy).astype(np.float64)                                                     # (N, C, H, W) in [-1, 1]
    return np.clip(x / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)

worst = 0.0
for name, sampler, scheduler in [('DDPMScheduler', 'ddpm', pipe.scheduler), ('DDIMScheduler', 'ddim', DDIMScheduler.from_config(pipe.scheduler.config))]:
    ref, noise_calls = diffusers_run(scheduler)
    got = ours(sampler)
    rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    worst = max(worst, rel)
    print(f'{name:14s} {a.steps} steps: relative L2 {rel:.3e}, max |diff| {np.abs(got - ref).max():.3e} '
          f'(pixel mean {ref.mean():.4f}; {noise_calls} noise draws replayed)')
print(f'worst relative L2 {worst:.3e} ({"within" if worst <= a.tol else "ABOVE"} {a.tol:g})')
sys.exit(0 if worst <= a.tol else 1)
