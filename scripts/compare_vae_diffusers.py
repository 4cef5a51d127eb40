# Checks that a VAE folder written by `diffusharp train-vae` (<run>/vae/) is read by diffusers 0.27.2 as DiffuSharp
# reads it: diffusers' AutoencoderKL.from_pretrained loads it, encodes 4 Fashion-MNIST test images (padded to the
# VAE's size with -1) and decodes seeded latents; the call is recorded in DiffuSharp's component-fixture format
# (tests/DiffuSharp.Tests/Fixtures/diffusers/README.upstream.md: NAME/ + NAME.io.safetensors) and replayed by
# `diffusharp verify-diffusers`, which compares every output (posterior mean, log-variance, std, decode of the
# latents, reconstruction from the mode) within 1e-4 relative L2 and exits 1 on a mismatch.
#
#   . ../shared/diffusers/env.sh && /usr/bin/python3 scripts/compare_vae_diffusers.py runs/vae-fm/vae [--work DIR]
import argparse, gzip, json, os, shutil, subprocess, sys
import numpy as np
import torch
import diffusers
from diffusers import AutoencoderKL
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
ap.add_argument('vae', help='a diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors)')
ap.add_argument('--work', default='/tmp/diffusharp-vae-compare', help='where the recording is written')
ap.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
a = ap.parse_args()

torch.set_num_threads(1)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
vae = AutoencoderKL.from_pretrained(a.vae).eval()
cfg = vae.config
size = cfg.sample_size
f = 2 ** (len(cfg.block_out_channels) - 1)

raw = gzip.open(os.path.join(a.data, 't10k-images-idx3-ubyte.gz')).read()
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:4].astype(np.float32) / np.float32(127.5) - np.float32(1)
pad = (size - 28) // 2
img = np.full((4, cfg.in_channels, size, size), -1, np.float32)
img[:, :, pad:pad + 28, pad:pad + 28] = x[:, None]
image = torch.from_numpy(img)
latents = torch.randn(4, cfg.latent_channels, size // f, size // f, generator=torch.Generator().manual_seed(0))

def run(model, image, latents):
    with torch.no_grad():
        d = model.encode(image).latent_dist
        return {'latent_mean': d.mean, 'latent_logvar': d.logvar, 'latent_std': d.std,
                'decoded_from_latents': model.decode(latents).sample, 'reconstruction_mode': model.decode(d.mode()).sample}

out32 = run(vae, image, latents)
out64 = run(AutoencoderKL.from_pretrained(a.vae).double().eval(), image.double(), latents.double())
tensors = {'input.image': image, 'input.latents': latents}
tensors.update({f'output.{k}': v.float().contiguous() for k, v in out32.items()})
tensors.update({f'output_f64.{k}': v.contiguous() for k, v in out64.items()})
name = 'trained_vae'
os.makedirs(a.work, exist_ok=True)
shutil.rmtree(os.path.join(a.work, name), ignore_errors=True)
shutil.copytree(a.vae, os.path.join(a.work, name))
meta = {'torch': torch.__version__, 'diffusers': diffusers.__version__, 'model_class': 'AutoencoderKL',
        'config': json.dumps(dict(cfg)), 'attn_processors': json.dumps(sorted({type(p).__name__ for p in vae.attn_processors.values()})),
        'f32_vs_f64_maxabs': json.dumps({k: float((out32[k].double() - out64[k]).abs().max()) for k in out32}), 'weights_dir': name}
path = os.path.join(a.work, f'{name}.io.safetensors')
save_file(tensors, path, metadata=meta)
print(f'diffusers {diffusers.__version__} loaded {a.vae}: scaling_factor {cfg.scaling_factor}; recorded {path}')
sys.exit(subprocess.call([os.path.join(root, 'diffusharp'), 'verify-diffusers', path]))
