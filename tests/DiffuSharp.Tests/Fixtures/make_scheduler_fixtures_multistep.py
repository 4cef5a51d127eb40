#!/usr/bin/env python3
"""make_scheduler_fixtures_multistep.py -- writes diffusers/sched_CASE.safetensors for the multistep solvers:
DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler, DEISMultistepScheduler and UniPCMultistepScheduler.
Fixture generator only: PyTorch is never a runtime dependency of DiffuSharp.

Versions: diffusers 0.27.2, torch 1.13.1 (Debian python3-torch, CPU, torch.set_num_threads(1)), numpy 1.24, the
pure-Python safetensors stub of the reference environment. Run (about 5 s):
    . path/to/shared/diffusers/env.sh && /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/make_scheduler_fixtures_multistep.py
    # -> tests/DiffuSharp.Tests/Fixtures/diffusers/sched_CASE.safetensors (or give an output folder)

The layout is exactly that of the upstream scheduler fixtures (diffusers/README.upstream.md, "Scheduler fixtures"):
one denoising run of `num_inference_steps` steps with stand-in model outputs, every step recorded.
Metadata: torch / diffusers / transformers versions, scheduler_class, config (the scheduler's full config as built,
i.e. its scheduler_config.json, before set_timesteps), config_overrides (the constructor arguments),
num_inference_steps, step_kwargs. Tensors: timesteps, alphas_cumprod, betas, init_noise_sigma, sigmas, sample_init,
stepNN.{timestep, model_input, model_output, noise, prev_sample}, add_noise.{original, noise, timesteps, result}.

Random numbers: one torch.Generator per case, seeded with crc32(case name), drawn in this order: sample_init
(1, C, 8, 8); then per step model_output (1, C_out, 8, 8) and noise (1, C, 8, 8), both N(0, 1); then
add_noise.original and add_noise.noise (3, C, 8, 8). The stand-in model output is the draw itself (a noise
prediction of unit variance, as the upstream files use). `noise` is drawn every step; the SDE variants of
DPMSolverMultistep receive it as `variance_noise`, the others ignore it. add_noise runs on a fresh instance after
set_timesteps, at timesteps[[0, n // 2, n - 1]]. C = 4 except for variance_type learned/learned_range, where the
sample has 3 channels and the model output 6 (diffusers keeps model_output[:, :3], the epsilon half).
"""
import json
import os
import sys
import zlib

import numpy as np
import torch

import diffusers
import transformers
from diffusers import (DEISMultistepScheduler, DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
                       UniPCMultistepScheduler)
from safetensors.torch import save_file

torch.set_num_threads(1)

SD15 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            steps_offset=1, timestep_spacing="leading")
# DPMSolverSinglestep has no timestep_spacing / steps_offset: its sd15 config is the betas only
SD15_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

DPM, SINGLE, DEIS, UNIPC = (DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler, DEISMultistepScheduler,
                            UniPCMultistepScheduler)

# (case, class, constructor arguments, num_inference_steps)
CASES = [
    # DPMSolverMultistep: orders, algorithms, solver types, final sigmas, prediction types, thresholding, schedules
    ("dpmpp1_sd15", DPM, dict(SD15, solver_order=1), 10),
    ("dpmpp3m_default", DPM, dict(solver_order=3), 10),
    ("dpmpp3m_nolof_sigmamin_sd15", DPM, dict(SD15, solver_order=3, lower_order_final=False,
                                              final_sigmas_type="sigma_min"), 10),
    ("dpmpp2m_nolof_sd15", DPM, dict(SD15, lower_order_final=False), 10),
    ("dpmpp2m_sigmamin_sd15", DPM, dict(SD15, final_sigmas_type="sigma_min"), 10),
    ("dpmpp2m_heun_default", DPM, dict(solver_type="heun"), 10),
    ("dpmpp2m_vpred_sd15", DPM, dict(SD15, prediction_type="v_prediction"), 10),
    ("dpmpp2m_xpred_default", DPM, dict(prediction_type="sample"), 10),
    ("dpmpp2m_thresh_default", DPM, dict(thresholding=True, sample_max_value=1.5), 10),
    ("dpmpp2m_cosine_clipped", DPM, dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1,
                                         timestep_spacing="trailing"), 10),
    ("dpmpp2m_zsnr_vpred_trailing", DPM, dict(SD15, rescale_betas_zero_snr=True, prediction_type="v_prediction",
                                              timestep_spacing="trailing"), 10),
    ("dpmpp2m_learned_range", DPM, dict(variance_type="learned_range"), 10),
    ("dpm2m_learned_sigmamin_default", DPM, dict(algorithm_type="dpmsolver", variance_type="learned",
                                                 final_sigmas_type="sigma_min"), 10),
    ("dpmpp2m_lu_sd15", DPM, dict(SD15, use_lu_lambdas=True), 10),
    ("dpmpp3m_lu_heun_default", DPM, dict(solver_order=3, use_lu_lambdas=True, solver_type="heun"), 10),
    ("dpm2m_sd15", DPM, dict(SD15, algorithm_type="dpmsolver", final_sigmas_type="sigma_min"), 10),
    ("dpm3m_default", DPM, dict(algorithm_type="dpmsolver", solver_order=3, final_sigmas_type="sigma_min"), 10),
    ("dpm2m_heun_vpred_default", DPM, dict(algorithm_type="dpmsolver", solver_type="heun",
                                           prediction_type="v_prediction", final_sigmas_type="sigma_min"), 10),
    ("dpm2m_thresh_xpred_default", DPM, dict(algorithm_type="dpmsolver", thresholding=True, sample_max_value=1.5,
                                             prediction_type="sample", final_sigmas_type="sigma_min"), 10),
    ("dpmpp2m_sde_karras_sd15", DPM, dict(SD15, algorithm_type="sde-dpmsolver++", use_karras_sigmas=True), 10),
    ("dpmpp2m_sde_heun_euler_final_default", DPM, dict(algorithm_type="sde-dpmsolver++", solver_type="heun",
                                                       euler_at_final=True), 10),
    ("dpmpp1_sde_sd15", DPM, dict(SD15, algorithm_type="sde-dpmsolver++", solver_order=1), 10),
    ("sde_dpm2m_sd15", DPM, dict(SD15, algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min"), 10),
    ("sde_dpm2m_heun_default", DPM, dict(algorithm_type="sde-dpmsolver", solver_type="heun",
                                         final_sigmas_type="sigma_min"), 10),
    ("dpmpp2m_karras_25", DPM, dict(SD15, use_karras_sigmas=True), 25),
    # DPMSolverSinglestep: orders 1-3, its order lists, dpmsolver, Karras
    ("dpm_single1_sd15", SINGLE, dict(SD15_BETAS, solver_order=1), 10),
    ("dpm_single2_sd15", SINGLE, dict(SD15_BETAS), 10),
    ("dpm_single3_sd15", SINGLE, dict(SD15_BETAS, solver_order=3), 10),
    ("dpm_single3_default", SINGLE, dict(solver_order=3), 12),
    ("dpm_single3_nolof_sigmamin_default", SINGLE, dict(solver_order=3, final_sigmas_type="sigma_min"), 9),
    ("dpm_single2_heun_karras_sd15", SINGLE, dict(SD15_BETAS, solver_type="heun", use_karras_sigmas=True), 10),
    ("dpm_single3_heun_vpred_sd15", SINGLE, dict(SD15_BETAS, solver_order=3, solver_type="heun",
                                                 prediction_type="v_prediction"), 10),
    ("dpm_single2_dpmsolver_default", SINGLE, dict(algorithm_type="dpmsolver", final_sigmas_type="sigma_min"), 10),
    ("dpm_single3_dpmsolver_heun_sd15", SINGLE, dict(SD15_BETAS, algorithm_type="dpmsolver", solver_order=3,
                                                     solver_type="heun", final_sigmas_type="sigma_min"), 10),
    ("dpm_single2_thresh_default", SINGLE, dict(thresholding=True, sample_max_value=1.5), 10),
    # DEISMultistep: orders 1-3
    ("deis1_sd15", DEIS, dict(SD15, solver_order=1), 10),
    ("deis2_sd15", DEIS, dict(SD15), 10),
    ("deis3_sd15", DEIS, dict(SD15, solver_order=3), 10),
    ("deis2_default", DEIS, dict(), 10),
    ("deis3_nolof_default", DEIS, dict(solver_order=3, lower_order_final=False), 10),
    ("deis3_vpred_trailing_sd15", DEIS, dict(SD15, solver_order=3, prediction_type="v_prediction",
                                             timestep_spacing="trailing"), 10),
    ("deis2_thresh_xpred_default", DEIS, dict(thresholding=True, sample_max_value=1.5, prediction_type="sample"), 10),
    # UniPC: bh1 / bh2 x predict_x0, order 3, disable_corrector, Karras
    ("unipc_bh1_nox0_sd15", UNIPC, dict(SD15, solver_type="bh1", predict_x0=False), 10),
    ("unipc_bh2_nox0_sd15", UNIPC, dict(SD15, predict_x0=False), 10),
    ("unipc3_bh2_sd15", UNIPC, dict(SD15, solver_order=3), 10),
    ("unipc3_bh1_default", UNIPC, dict(solver_type="bh1", solver_order=3), 10),
    ("unipc3_bh2_nox0_default", UNIPC, dict(solver_order=3, predict_x0=False), 10),
    ("unipc3_bh1_nox0_nolof_sd15", UNIPC, dict(SD15, solver_type="bh1", solver_order=3, predict_x0=False,
                                               lower_order_final=False), 10),
    ("unipc_disable_corrector_sd15", UNIPC, dict(SD15, disable_corrector=[0, 3]), 10),
    ("unipc3_karras_sd15", UNIPC, dict(SD15, solver_order=3, use_karras_sigmas=True), 10),
    ("unipc_vpred_thresh_default", UNIPC, dict(prediction_type="v_prediction", thresholding=True,
                                               sample_max_value=1.5), 10),
    ("unipc_nox0_xpred_trailing_sd15", UNIPC, dict(SD15, predict_x0=False, prediction_type="sample",
                                                   timestep_spacing="trailing"), 10),
]


def run_case(name, cls, kwargs, n):
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    learned = kwargs.get("variance_type") in ("learned", "learned_range")
    c, c_out = (3, 6) if learned else (4, 4)
    shape, out_shape = (1, c, 8, 8), (1, c_out, 8, 8)

    sched = cls(**kwargs)
    config = dict(sched.config)                       # the scheduler_config.json a user would have
    if "_use_default_values" in config:               # a set in diffusers: sorted, so that reruns are byte-identical
        config["_use_default_values"] = sorted(config["_use_default_values"])
    config = json.dumps(config)
    sched.set_timesteps(n)
    t = {
        "timesteps": sched.timesteps.to(torch.int64).clone(),
        "alphas_cumprod": sched.alphas_cumprod.to(torch.float32).clone(),
        "betas": sched.betas.to(torch.float32).clone(),
        "init_noise_sigma": torch.tensor(float(sched.init_noise_sigma), dtype=torch.float32),
        "sigmas": sched.sigmas.to(torch.float32).clone(),
    }
    sample = torch.randn(shape, generator=g) * sched.init_noise_sigma
    t["sample_init"] = sample.clone()
    sde = getattr(sched.config, "algorithm_type", "") in ("sde-dpmsolver", "sde-dpmsolver++")
    for i, ts in enumerate(sched.timesteps):
        model_input = sched.scale_model_input(sample, ts)
        model_output = torch.randn(out_shape, generator=g)
        noise = torch.randn(shape, generator=g)
        out = sched.step(model_output, ts, sample, variance_noise=noise) if sde else sched.step(model_output, ts, sample)
        p = f"step{i:02d}."
        t[p + "timestep"] = torch.tensor(int(ts), dtype=torch.int64)
        t[p + "model_input"] = model_input.clone()
        t[p + "model_output"] = model_output.clone()
        t[p + "noise"] = noise.clone()
        t[p + "prev_sample"] = out.prev_sample.clone()
        if getattr(out, "pred_original_sample", None) is not None:
            t[p + "pred_original_sample"] = out.pred_original_sample.clone()
        sample = out.prev_sample
        if not torch.isfinite(sample).all():
            raise RuntimeError(f"{name}: non-finite sample at step {i}")

    fresh = cls(**kwargs)
    fresh.set_timesteps(n)
    original = torch.randn((3,) + shape[1:], generator=g)
    an_noise = torch.randn((3,) + shape[1:], generator=g)
    an_t = fresh.timesteps[[0, n // 2, n - 1]].to(torch.int64)
    t["add_noise.original"] = original
    t["add_noise.noise"] = an_noise
    t["add_noise.timesteps"] = an_t.clone()
    t["add_noise.result"] = fresh.add_noise(original, an_noise, an_t).clone()

    meta = {
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "scheduler_class": cls.__name__,
        "config": config,
        "config_overrides": json.dumps(kwargs),
        "num_inference_steps": str(n),
        "step_kwargs": json.dumps({}),
    }
    return t, meta


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "diffusers")
    for name, cls, kwargs, n in CASES:
        tensors, meta = run_case(name, cls, kwargs, n)
        path = os.path.join(out_dir, f"sched_{name}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"{os.path.basename(path)}: {cls.__name__}, {len(tensors)} tensors, "
              f"timesteps {tensors['timesteps'].tolist()}")


if __name__ == "__main__":
    main()
