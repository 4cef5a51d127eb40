# Makes Fixtures/vae_tiled_decode.safetensors: diffusers' AutoencoderKL.tiled_decode (enable_tiling) of the tiny_sd
# pipeline's VAE (diffusers/pipelines/tiny_sd/vae) on a 1×4×10×14 latent, with the VAE's own tile size (sample_size 64
# → 8 latents, overlap 0.25) and with tiles of 12 latents / 96 pixels
# (a tile size whose 3/4 is a whole number of latents: with others diffusers' crop and stride disagree and the image
# comes out larger than 8× the latent). The relative L2 distance of each to the plain decode goes in the metadata.
# Versions: diffusers 0.27.2, torch 1.13.1 (Debian python3-torch, prints 1.13.0a0), CPU, 1 thread.
# Run:  . shared/diffusers/env.sh && /usr/bin/python3 make_vae_tiling.py
import json, os
import torch
import diffusers
from diffusers import AutoencoderKL
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
vae = AutoencoderKL.from_pretrained(os.path.join(HERE, "diffusers", "pipelines", "tiny_sd", "vae")).eval()
z = torch.randn(1, 4, 10, 14, generator=torch.Generator().manual_seed(7)) * 2.0
out = {"input.latents": z}
with torch.no_grad():
    plain = vae.decode(z).sample
    vae.enable_tiling()
    out["output.tiled_default"] = vae.decode(z).sample
    vae.tile_latent_min_size, vae.tile_sample_min_size = 12, 96
    out["output.tiled_12"] = vae.decode(z).sample
rel = {k[7:]: float((v - plain).norm() / plain.norm()) for k, v in out.items() if k.startswith("output.")}
meta = {"vae": "diffusers/pipelines/tiny_sd/vae", "torch": torch.__version__, "diffusers": diffusers.__version__,
        "tiles": json.dumps({"tiled_default": [8, 64, 0.25], "tiled_12": [12, 96, 0.25]}),
        "rel_to_plain": json.dumps(rel),
        "call": "vae.enable_tiling(); vae.decode(latents).sample (latents unscaled, as AutoencoderKL.decode takes them)"}
save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(HERE, "vae_tiled_decode.safetensors"), metadata=meta)
for k, v in out.items(): print(k, tuple(v.shape))
print("relative L2 to the plain decode", rel)
