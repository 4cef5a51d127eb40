#!/usr/bin/env python3
"""Samples a StableDiffusionPipeline folder written by DiffuSharp (train-latent's pipeline/, models/fashion-mnist-ldm)
with diffusers 0.27.2 and with `diffusharp txt2img` from the same initial latents, prompt and scheduler, and prints one
JSON line per prompt: the relative L2 distance of the decoded images (both in [-1, 1]). Exits 1 when one exceeds --tol.
With --controlnet DIR --control-image PNG it runs StableDiffusionControlNetPipeline and `txt2img --controlnet`.

    . ../shared/diffusers/env.sh && /usr/bin/python3 scripts/compare_ldm_diffusers.py models/fashion-mnist-ldm
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--prompts", nargs="+", default=["a photo of a sneaker", "a dark dress", "a small light bag"])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--controlnet", action="append", default=[])
    ap.add_argument("--control-image", action="append", default=[])
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()

    import transformers
    import transformers.tokenization_utils_base as tub
    if not transformers.utils.is_tokenizers_available():
        # the reference environment has no Rust `tokenizers`: make the fallback AddedToken behave like the Rust one
        # (../shared/diffusers/sd15/README.md, "Environment")
        tub.AddedToken.__hash__ = lambda self: hash(self.content)
        tub.AddedToken.__setstate__ = lambda self, state: self.__dict__.update(state)
        tub.AddedToken.__getstate__ = lambda self: dict(self.__dict__)
    from diffusers import StableDiffusionPipeline, StableDiffusionControlNetPipeline, ControlNetModel
    import diffusers
    diffusers.utils.logging.disable_progress_bar()
    torch.set_grad_enabled(False)
    if args.controlnet:
        nets = [ControlNetModel.from_pretrained(d) for d in args.controlnet]
        pipe = StableDiffusionControlNetPipeline.from_pretrained(args.folder, controlnet=nets if len(nets) > 1 else nets[0],
                                                                 safety_checker=None, requires_safety_checker=False)
        controls = [Image.open(p).convert("RGB") for p in args.control_image]
    else:
        pipe = StableDiffusionPipeline.from_pretrained(args.folder, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    f = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = pipe.unet.config.sample_size * f
    c = pipe.unet.config.in_channels
    rng = np.random.default_rng(args.seed)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for k, prompt in enumerate(args.prompts):
            latents = rng.standard_normal((args.n, c, size // f, size // f)).astype(np.float32)
            lat_path, npy_path = os.path.join(tmp, f"x{k}.npy"), os.path.join(tmp, f"y{k}.npy")
            np.save(lat_path, latents)
            extra = {}
            cmd = [os.path.join(ROOT, "diffusharp"), "txt2img", "--model", args.folder, "--prompt", prompt, "--steps", str(args.steps),
                   "--guidance", str(args.guidance), "--n", str(args.n), "--latents", lat_path, "--save-npy", npy_path,
                   "--out", os.path.join(tmp, f"y{k}.png")]
            for d, img in zip(args.controlnet, args.control_image):
                cmd += ["--controlnet", d, "--control-image", img]
            if args.controlnet:
                extra["image"] = controls if len(controls) > 1 else controls[0]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ours = np.load(npy_path).astype(np.float64)
            ref = pipe(prompt, num_inference_steps=args.steps, guidance_scale=args.guidance, num_images_per_prompt=args.n,
                       latents=torch.from_numpy(latents), height=size, width=size, output_type="np", **extra).images
            ref = ref.transpose(0, 3, 1, 2).astype(np.float64) * 2 - 1          # NHWC [0, 1] -> NCHW [-1, 1]
            rel = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
            worst = max(worst, rel)
            print(json.dumps({"prompt": prompt, "scheduler": type(pipe.scheduler).__name__, "steps": args.steps,
                              "guidance": args.guidance, "controlnets": len(args.controlnet), "rel_l2": rel,
                              "max_abs": float(np.abs(ours - ref).max())}))
    sys.exit(0 if worst <= args.tol else 1)


if __name__ == "__main__":
    main()
