#!/usr/bin/env python3
"""make_pipeline_scheduler_steps.py -- cuts the scheduler's part out of two Stable Diffusion pipeline runs recorded by
diffusers 0.27.2 (the project's reference data, shared/diffusers/pipelines/, format in diffusers/README.upstream.md,
"Pipeline fixtures"), so that DPMSolverMultistepScheduler can be replayed inside a real denoising loop without the
UNet: sd_txt2img (DPM-Solver++ 2M built by from_config of Stable Diffusion 1.5's PNDM config: leading spacing,
steps_offset 1, keys of other classes present) and sd_multicontrolnet (the same with use_karras_sigmas).
No computation: tensors are copied bit for bit. Versions of the source files: diffusers 0.27.2, torch 1.13.1.

Run: . path/to/shared/diffusers/env.sh && /usr/bin/python3 make_pipeline_scheduler_steps.py path/to/shared/diffusers/pipelines
    # -> tests/DiffuSharp.Tests/Fixtures/diffusers/pipeline_steps_{sd_txt2img,sd_multicontrolnet}.safetensors

Kept: input.latents (x_T before × init_noise_sigma), intermediate.timesteps, stepNN.noise_pred ([uncond; cond] UNet
outputs), stepNN.latents (after scheduler.step), output.latents; metadata scheduler_class, scheduler_config, call
(guidance_scale), timesteps, source file. A replay: latents = input.latents · init_noise_sigma; per step
guided = u + guidance_scale · (c − u); latents = step(guided, t, latents); compare with stepNN.latents.
"""
import json
import os
import sys

from safetensors.torch import safe_open, save_file

KEEP_META = ("scheduler_class", "scheduler_config", "call", "timesteps", "diffusers", "torch")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../../shared/diffusers/pipelines")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusers")
    for run in ("sd_txt2img", "sd_multicontrolnet"):
        with safe_open(os.path.join(src, run + ".safetensors")) as f:
            meta = f.metadata()
            keys = [k for k in f.keys()
                    if k in ("input.latents", "intermediate.timesteps", "output.latents")
                    or (k.startswith("step") and k.split(".", 1)[1] in ("noise_pred", "latents"))]
            tensors = {k: f.get_tensor(k) for k in keys}
        kept = {k: meta[k] for k in KEEP_META if k in meta}
        kept["source"] = f"shared/diffusers/pipelines/{run}.safetensors"
        save_file(tensors, os.path.join(out, f"pipeline_steps_{run}.safetensors"), metadata=kept)
        print(run, len(tensors), "tensors", json.loads(meta["call"]).get("guidance_scale"))


if __name__ == "__main__":
    main()
