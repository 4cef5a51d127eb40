#!/usr/bin/env python3
"""make_scheduler_fixtures.py -- writes diffusers/sched_CASE.safetensors for the schedulers without upstream fixtures:
PNDMScheduler (PLMS and PRK), LMSDiscreteScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler,
KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler (cases sched_{pndm,lms,euler_a,heun,kdpm2,kdpm2_a}_*).
Fixture generator only: PyTorch is never a runtime dependency of DiffuSharp.

Versions: diffusers 0.27.2, torch 1.13.1 (Debian python3-torch, CPU, torch.set_num_threads(1)), numpy 1.24, the
pure-Python safetensors stub of the reference environment. Run (a few seconds):
    . path/to/shared/diffusers/env.sh && /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/make_scheduler_fixtures.py
    # -> tests/DiffuSharp.Tests/Fixtures/diffusers/sched_CASE.safetensors (or give an output folder)

scipy: the reference environment has none, and diffusers' LMSDiscreteScheduler needs scipy.integrate.quad. This
script puts a stand-in on the path (a temporary folder with scipy/integrate.py and its dist-info) whose quad is
16-point Gauss-Legendre in float64 on the whole interval: LMS integrates Lagrange basis polynomials of degree <= 3,
which that rule integrates exactly, as QUADPACK's qags does (its first K21 estimate is exact for them).

Layout: that of the upstream scheduler fixtures (diffusers/README.upstream.md, "Scheduler fixtures"): one run of
`num_inference_steps` steps with stand-in model outputs, every model call recorded as a step (Heun and KDPM2 make
2n - 1 calls, PNDM with skip_prk_steps n + 1, PNDM with PRK 12 + n - 3). Metadata: versions, scheduler_class, config
(the scheduler's full config as built, before set_timesteps), config_overrides, num_inference_steps, step_kwargs.
Tensors: timesteps (int64 for PNDM, else the scheduler's float dtype), alphas_cumprod, betas, init_noise_sigma,
sigmas (where the scheduler has them; Heun/KDPM2's interleaved tables), sample_init (x_T, already multiplied by
init_noise_sigma), stepNN.{timestep, model_input, model_output, noise, prev_sample, pred_original_sample (where
returned)}, add_noise.{original, noise, timesteps, result} (a fresh instance after set_timesteps, at timesteps
[0, n // 2, n - 1] of its schedule).

Also writes diffusers/scheduler_configs.json: what diffusers' from_config + save_config make of Stable Diffusion 1.5's
PNDMScheduler config (the tiny_sd pipeline folder's scheduler_config.json, as diffusers 0.27.2 saved it; embedded
as "sd15_pndm") for every scheduler class ("from_sd15_pndm": class -> to_json_string()), and chains that show
which keys travel: "chains" is a list of {"path": [class, ...], "json": to_json_string() of the last}, each class
built by from_config of the previous one's config (the first from its defaults, or from sd15_pndm when the path
starts with "sd15_pndm").

Random numbers: one torch.Generator per case, seeded with crc32(case name): sample_init (1, 4, 8, 8); per call
model_output and noise (1, 4, 8, 8), N(0, 1) (noise reaches step() through a generator stand-in that returns it, so
ancestral schedulers add exactly the recorded noise); then add_noise.original and add_noise.noise (3, 4, 8, 8).
"""
import json
import os
import sys
import tempfile
import zlib

STUB = tempfile.mkdtemp(prefix="scipy_stub_")
os.makedirs(os.path.join(STUB, "scipy"))
os.makedirs(os.path.join(STUB, "scipy-1.10.1.dist-info"))
with open(os.path.join(STUB, "scipy", "__init__.py"), "w") as f:
    f.write("__version__ = '1.10.1'\n")
with open(os.path.join(STUB, "scipy", "integrate.py"), "w") as f:
    f.write(
        "import numpy as np\n"
        "_x, _w = np.polynomial.legendre.leggauss(16)\n"
        "def quad(func, a, b, epsrel=1.49e-08, **kw):\n"
        "    a, b = float(a), float(b)\n"
        "    c, h = 0.5 * (a + b), 0.5 * (b - a)\n"
        "    return h * sum(float(w) * float(func(c + h * float(x))) for x, w in zip(_x, _w)), 0.0\n")
with open(os.path.join(STUB, "scipy-1.10.1.dist-info", "METADATA"), "w") as f:
    f.write("Metadata-Version: 2.1\nName: scipy\nVersion: 1.10.1\n")
sys.path.insert(0, STUB)

import torch  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (DDIMScheduler, DDPMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler,  # noqa: E402
                       DPMSolverSinglestepScheduler, UniPCMultistepScheduler)
from diffusers import (EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, KDPM2AncestralDiscreteScheduler,  # noqa: E402
                       KDPM2DiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler)
from diffusers.schedulers import scheduling_euler_ancestral_discrete, scheduling_k_dpm_2_ancestral_discrete  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(1)

SD15 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            steps_offset=1, timestep_spacing="leading")
PNDM, LMS, EA, HEUN, K2, K2A = (PNDMScheduler, LMSDiscreteScheduler, EulerAncestralDiscreteScheduler,
                                HeunDiscreteScheduler, KDPM2DiscreteScheduler, KDPM2AncestralDiscreteScheduler)

# (case, class, constructor arguments, num_inference_steps)
CASES = [
    ("pndm_sd15", PNDM, dict(SD15, skip_prk_steps=True, set_alpha_to_one=False), 10),
    ("pndm_default", PNDM, dict(skip_prk_steps=True), 10),
    ("pndm_prk_default", PNDM, dict(), 10),
    ("pndm_prk_vpred_trailing_sd15", PNDM, dict(SD15, prediction_type="v_prediction", timestep_spacing="trailing"), 12),
    ("pndm_linspace_cosine", PNDM, dict(skip_prk_steps=True, beta_schedule="squaredcos_cap_v2",
                                        timestep_spacing="linspace", set_alpha_to_one=True), 10),
    ("lms_default", LMS, dict(), 10),
    ("lms_sd15", LMS, dict(SD15), 10),
    ("lms_karras_sd15", LMS, dict(SD15, use_karras_sigmas=True), 10),
    ("lms_vpred_trailing_sd15", LMS, dict(SD15, prediction_type="v_prediction", timestep_spacing="trailing"), 10),
    ("euler_a_default", EA, dict(), 10),
    ("euler_a_sd15", EA, dict(SD15), 10),
    ("euler_a_vpred_zsnr_trailing_sd15", EA, dict(SD15, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                                 timestep_spacing="trailing"), 10),
    ("heun_default", HEUN, dict(), 10),
    ("heun_sd15", HEUN, dict(SD15), 10),
    ("heun_karras_sd15", HEUN, dict(SD15, use_karras_sigmas=True), 10),
    ("heun_vpred_clip_linspace", HEUN, dict(prediction_type="v_prediction", clip_sample=True, clip_sample_range=2.0), 10),
    ("kdpm2_default", K2, dict(), 10),
    ("kdpm2_sd15", K2, dict(SD15), 10),
    ("kdpm2_karras_sd15", K2, dict(SD15, use_karras_sigmas=True), 10),
    ("kdpm2_vpred_trailing_sd15", K2, dict(SD15, prediction_type="v_prediction", timestep_spacing="trailing"), 10),
    ("kdpm2_a_default", K2A, dict(), 10),
    ("kdpm2_a_sd15", K2A, dict(SD15), 10),
    ("kdpm2_a_karras_sd15", K2A, dict(SD15, use_karras_sigmas=True), 10),
]


class _Recorded:
    """Stands in for diffusers' randn_tensor inside the ancestral schedulers: returns the recorded draw."""
    noise = None

    @staticmethod
    def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == tuple(_Recorded.noise.shape)
        return _Recorded.noise.clone()


for module in (scheduling_euler_ancestral_discrete, scheduling_k_dpm_2_ancestral_discrete):
    module.randn_tensor = _Recorded.randn_tensor


def run_case(name, cls, kwargs, n):
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    shape = (1, 4, 8, 8)
    sched = cls(**kwargs)
    config = dict(sched.config)
    if "_use_default_values" in config:
        config["_use_default_values"] = sorted(config["_use_default_values"])
    config = json.dumps(config)
    sched.set_timesteps(n)
    int_timesteps = not torch.is_floating_point(sched.timesteps)
    t = {
        "timesteps": sched.timesteps.clone(),
        "alphas_cumprod": sched.alphas_cumprod.to(torch.float32).clone(),
        "betas": sched.betas.to(torch.float32).clone(),
        "init_noise_sigma": torch.tensor(float(sched.init_noise_sigma), dtype=torch.float32),
    }
    if hasattr(sched, "sigmas"):
        t["sigmas"] = torch.as_tensor(sched.sigmas).to(torch.float32).clone()
    sample = torch.randn(shape, generator=g) * sched.init_noise_sigma
    t["sample_init"] = sample.clone()
    for i, ts in enumerate(sched.timesteps):
        model_input = sched.scale_model_input(sample, ts)
        model_output = torch.randn(shape, generator=g)
        noise = torch.randn(shape, generator=g)
        _Recorded.noise = noise
        out = sched.step(model_output, ts, sample)
        p = f"step{i:02d}."
        t[p + "timestep"] = ts.clone()
        t[p + "model_input"] = model_input.clone()
        t[p + "model_output"] = model_output.clone()
        t[p + "noise"] = noise.clone()
        t[p + "prev_sample"] = out.prev_sample.clone()
        if getattr(out, "pred_original_sample", None) is not None:
            t[p + "pred_original_sample"] = out.pred_original_sample.clone()
        sample = out.prev_sample
        if not torch.isfinite(sample).all():
            raise RuntimeError(f"{name}: non-finite sample at call {i}")

    fresh = cls(**kwargs)
    fresh.set_timesteps(n)
    m = len(fresh.timesteps)
    original = torch.randn((3,) + shape[1:], generator=g)
    an_noise = torch.randn((3,) + shape[1:], generator=g)
    an_t = fresh.timesteps[[0, m // 2, m - 1]]
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
    return t, meta, int_timesteps


SD15_PNDM = """{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.27.2",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "timestep_spacing": "leading",
  "trained_betas": null
}
"""

ALL = [DDPMScheduler, DDIMScheduler, PNDM, LMS, diffusers.EulerDiscreteScheduler, EA, HEUN, K2, K2A,
       DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler, DEISMultistepScheduler, UniPCMultistepScheduler]
CHAINS = [
    ["sd15_pndm", "EulerDiscreteScheduler", "DPMSolverSinglestepScheduler"],
    ["sd15_pndm", "DPMSolverMultistepScheduler", "DDIMScheduler"],
    ["EulerDiscreteScheduler", "DDIMScheduler"],
    ["HeunDiscreteScheduler", "DDPMScheduler"],
    ["DDIMScheduler", "UniPCMultistepScheduler", "PNDMScheduler"],
]


def write_configs(path):
    by_name = {c.__name__: c for c in ALL}
    source = json.loads(SD15_PNDM)
    out = {"sd15_pndm": SD15_PNDM, "from_sd15_pndm": {}, "chains": []}
    for cls in ALL:
        out["from_sd15_pndm"][cls.__name__] = cls.from_config(source).to_json_string()
    for path_names in CHAINS:
        names = list(path_names)
        sched = PNDM.from_config(source) if names[0] == "sd15_pndm" else by_name[names[0]]()
        for name in names[1:]:
            sched = by_name[name].from_config(sched.config)
        out["chains"].append({"path": path_names, "json": sched.to_json_string()})
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "diffusers")
    write_configs(os.path.join(out_dir, "scheduler_configs.json"))
    for name, cls, kwargs, n in CASES:
        tensors, meta, _ = run_case(name, cls, kwargs, n)
        path = os.path.join(out_dir, f"sched_{name}.safetensors")
        save_file(tensors, path, metadata=meta)
        ts = tensors["timesteps"].tolist()
        print(f"{os.path.basename(path)}: {cls.__name__}, {len(tensors)} tensors, {len(ts)} calls, "
              f"timesteps {[round(x, 3) for x in ts][:6]}...")


if __name__ == "__main__":
    main()
