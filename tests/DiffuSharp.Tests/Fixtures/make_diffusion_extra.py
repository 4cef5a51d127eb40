#!/usr/bin/env python3
"""make_diffusion_extra.py -- writes diffusion_extra_ref.safetensors, reference values from openai/improved-diffusion
for what shared/parity/diffusion_ref.safetensors does not cover: learned / learned-range variances, x_0 and x_{t-1}
mean types, training_losses for every loss type (and the gradient through the frozen mean), _vb_terms_bpd,
_prior_bpd, calc_bpd_loop, ddim_reverse_sample, a respaced + rescaled process (create_gaussian_diffusion), the
likelihood helpers of losses.py and LossSecondMomentResampler. Fixture generator only: PyTorch is never a runtime
dependency of DiffuSharp.

Run (CPU, deterministic, about a second), with a checkout of openai/improved-diffusion at commit
1bc7bbbdc414d83d4abf2ad8cc1446dc36c4e4d5:
    /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/make_diffusion_extra.py /path/to/improved-diffusion
    # -> tests/DiffuSharp.Tests/Fixtures/diffusion_extra_ref.safetensors (or give an output path second)

Inputs (float32, torch.manual_seed(0), drawn in this order): x_t ~ N(0,1) [4,3,4,4]; x_start = round(U(0,255))/127.5 - 1
with x_start[0,0,0,:] = [-1, -1, 1, 1] (the decoder's edge bins); noise ~ N(0,1);
w_out = cat([noise + 0.1 N(0,1), 0.5 N(0,1)], 1) [4,6,4,4] (a near-correct eps, so the t = 0 decoder term is well
conditioned); kl.{m1,lv1,m2,lv2} ~ N(0,1) [4,3,4,4]; cdf.z ~ 3 N(0,1) [64];
dgll.means = x_start + 0.02 N(0,1), dgll.log_scales = log(0.02) + 0.2 N(0,1) (a decoder that is roughly right:
far in the tails cdf_plus - cdf_min cancels in float32 and the reference's own result is noise, off from its
float64 value by up to 10 nats).

The "model" is arithmetic only, so that float32 results can agree bit for bit (ts = the float timesteps it receives):
    mean part m = x * 0.5 + ts.view(-1,1,1,1) * 0.001
    LEARNED_RANGE: out = cat([m, (x * 0.25 - 0.1).clamp(-1, 1)], 1);  LEARNED: out = cat([m, x * 0.25 - 2.0], 1)
Wherever the reference calls th.randn_like it gets `noise` instead (also in calc_bpd_loop: the same noise every t).
Results that pass through exp/log/tanh or a mean are stored twice: `name` (float32, as the reference runs) and
`name.f64` (the same code on float64 inputs), so tests can hold DiffuSharp's float32 error to the reference's own.
"""
import json
import os
import struct
import sys

import numpy as np
import torch as th

REF = sys.argv[1] if len(sys.argv) > 1 else "/tmp/improved-diffusion"
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusion_extra_ref.safetensors")
sys.path.insert(0, REF)
if not hasattr(np, "int"):
    np.int = int  # resample.py uses np.int, removed in numpy 1.24

from improved_diffusion import gaussian_diffusion as gd  # noqa: E402
from improved_diffusion import losses  # noqa: E402
from improved_diffusion.resample import LossSecondMomentResampler  # noqa: E402
from improved_diffusion.respace import SpacedDiffusion, space_timesteps  # noqa: E402
from improved_diffusion.script_util import create_gaussian_diffusion  # noqa: E402

th.manual_seed(0)
B, C, H, W = 4, 3, 4, 4
x_t = th.randn(B, C, H, W)
x_start = (th.round(th.rand(B, C, H, W) * 255) / 127.5 - 1).float()
x_start[0, 0, 0, :] = th.tensor([-1.0, -1.0, 1.0, 1.0])
noise = th.randn(B, C, H, W)
w_out = th.cat([noise + 0.1 * th.randn(B, C, H, W), 0.5 * th.randn(B, C, H, W)], 1)
kl_in = [th.randn(B, C, H, W) for _ in range(4)]
cdf_z = 3 * th.randn(64)
dgll_means = x_start + 0.02 * th.randn(B, C, H, W)
dgll_log_scales = float(np.log(0.02)) + 0.2 * th.randn(B, C, H, W)
t = th.tensor([0, 1, 50, 99])
T = 100

out = {}


def put(name, value):
    if isinstance(value, th.Tensor):
        value = value.detach().cpu().numpy()
    out[name] = np.ascontiguousarray(value)


def put2(name, f):
    """f(dtype) -> tensor; stores the float32 result as `name` and the float64 one as `name.f64` (same float32
    schedule coefficients: _extract_into_tensor rounds them to float32 either way), which measures the reference's
    own float32 error."""
    put(name, f(th.float32))
    put(name + ".f64", f(th.float64).double())


def make_model(var_type):
    def model(x, ts, **kwargs):
        m = x * 0.5 + ts.float().view(-1, 1, 1, 1) * 0.001
        if var_type == gd.ModelVarType.LEARNED_RANGE:
            return th.cat([m, (x * 0.25 - 0.1).clamp(-1, 1)], 1)
        if var_type == gd.ModelVarType.LEARNED:
            return th.cat([m, x * 0.25 - 2.0], 1)
        return m
    return model


def fixed_noise(x, *args, **kwargs):
    assert x.shape == noise.shape
    return noise.to(x.dtype).clone()


th.randn_like = fixed_noise

MEAN = {"eps": gd.ModelMeanType.EPSILON, "xstart": gd.ModelMeanType.START_X, "xprev": gd.ModelMeanType.PREVIOUS_X}
VAR = {"learnedrange": gd.ModelVarType.LEARNED_RANGE, "learned": gd.ModelVarType.LEARNED,
       "fixedsmall": gd.ModelVarType.FIXED_SMALL, "fixedlarge": gd.ModelVarType.FIXED_LARGE}
LOSS = {"mse": gd.LossType.MSE, "rescaledmse": gd.LossType.RESCALED_MSE, "kl": gd.LossType.KL, "rescaledkl": gd.LossType.RESCALED_KL}


def diffusion(mean, var, loss):
    return gd.GaussianDiffusion(betas=gd.get_named_beta_schedule("linear", T), model_mean_type=MEAN[mean],
                                model_var_type=VAR[var], loss_type=LOSS[loss], rescale_timesteps=False)


put("x_t", x_t); put("x_start", x_start); put("noise", noise); put("w_out", w_out); put("t", t.long())

# p_mean_variance for the mean and variance types the shared fixture lacks.
for mean, var, clip in [("eps", "learnedrange", True), ("xstart", "learned", True), ("xprev", "fixedsmall", True), ("eps", "fixedlarge", False)]:
    d = diffusion(mean, var, "mse")
    o = d.p_mean_variance(make_model(VAR[var]), x_t, t, clip_denoised=clip)
    for k in ("mean", "log_variance", "pred_xstart"):
        put(f"pmv.{mean}_{var}.{k}", o[k])

# training_losses for every loss type.
for mean, var, loss in [("eps", "fixedlarge", "mse"), ("eps", "learnedrange", "rescaledmse"), ("xstart", "learned", "mse"),
                        ("xprev", "fixedsmall", "kl"), ("eps", "learnedrange", "rescaledkl")]:
    d = diffusion(mean, var, loss)
    for k in d.training_losses(make_model(VAR[var]), x_start, t, noise=noise):
        put2(f"loss.{mean}_{var}_{loss}.{k}",
             lambda dt: d.training_losses(make_model(VAR[var]), x_start.to(dt), t, noise=noise.to(dt))[k])

# The gradient of sum(loss) with respect to a constant model output: the VB term must not reach the mean half.
for loss in ("mse", "rescaledmse"):
    d = diffusion("eps", "learnedrange", loss)

    def grad(dt, what):
        w = w_out.to(dt).clone().requires_grad_(True)
        terms = d.training_losses(lambda x, ts, **kw: w, x_start.to(dt), t, noise=noise.to(dt))
        terms["loss"].sum().backward()
        return terms["loss"] if what == "loss" else w.grad
    put2(f"grad.eps_learnedrange_{loss}.loss", lambda dt: grad(dt, "loss"))
    put2(f"grad.eps_learnedrange_{loss}.w_out", lambda dt: grad(dt, "w_out"))

# One VB term and the prior term.
d = diffusion("eps", "learnedrange", "mse")
o = d._vb_terms_bpd(make_model(gd.ModelVarType.LEARNED_RANGE), x_start, x_t, t, clip_denoised=True)
put("vb.eps_learnedrange.pred_xstart", o["pred_xstart"])
put2("vb.eps_learnedrange.output",
     lambda dt: d._vb_terms_bpd(make_model(gd.ModelVarType.LEARNED_RANGE), x_start.to(dt), x_t.to(dt), t, clip_denoised=True)["output"])
put2("prior_bpd", lambda dt: d._prior_bpd(x_start.to(dt)))

# Likelihood helpers.
for i, k in enumerate(("m1", "lv1", "m2", "lv2")):
    put(f"kl.{k}", kl_in[i])
put2("kl.out", lambda dt: losses.normal_kl(*[a.to(dt) for a in kl_in]))
put2("kl.prior", lambda dt: losses.normal_kl(kl_in[0].to(dt), kl_in[1].to(dt), 0.0, 0.0))
put("cdf.z", cdf_z); put2("cdf.out", lambda dt: losses.approx_standard_normal_cdf(cdf_z.to(dt)))
put("dgll.means", dgll_means); put("dgll.log_scales", dgll_log_scales)
put2("dgll.out", lambda dt: losses.discretized_gaussian_log_likelihood(
    x_start.to(dt), means=dgll_means.to(dt), log_scales=dgll_log_scales.to(dt)))

# A respaced, rescaled process as create_gaussian_diffusion makes it (cosine, T = 100 → 25 steps, learned sigma).
sd = create_gaussian_diffusion(steps=T, learn_sigma=True, noise_schedule="cosine", timestep_respacing="25",
                               rescale_timesteps=True, rescale_learned_sigmas=True)
st = th.tensor([0, 1, 12, 24])
lr_model = make_model(gd.ModelVarType.LEARNED_RANGE)
put("spaced.t", st.long())
put("spaced.timestep_map", np.array(sd.timestep_map, dtype=np.int64))
put("spaced.betas", sd.betas)
o = sd.p_mean_variance(lr_model, x_t, st)
for k in ("mean", "log_variance", "pred_xstart"):
    put(f"spaced.pmv.{k}", o[k])
for k in sd.training_losses(lr_model, x_start, st, noise=noise):
    put2(f"spaced.loss.{k}", lambda dt: sd.training_losses(lr_model, x_start.to(dt), st, noise=noise.to(dt))[k])
put("spaced.ddim_reverse_sample", sd.ddim_reverse_sample(lr_model, x_t, st)["sample"])
put2("spaced.p_sample", lambda dt: sd.p_sample(lr_model, x_t.to(dt), st)["sample"])
put("spaced.ddim_sample_loop", sd.ddim_sample_loop(lr_model, (B, C, H, W), noise=x_t, eta=0.0, device="cpu"))
for k in sd.calc_bpd_loop(lr_model, x_start, clip_denoised=True):
    put2(f"spaced.calc_bpd.{k}", lambda dt: sd.calc_bpd_loop(lr_model, x_start.to(dt), clip_denoised=True)[k])

# LossSecondMomentResampler: T = 5, 3 losses per term, uniform share 0.01; weights after warm-up and a shift.
class _D:
    num_timesteps = 5


rs = LossSecondMomentResampler(_D(), history_per_term=3, uniform_prob=0.01)
ts = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 2, 2]
ls = [float(np.float32(0.1 * (i + 1) + 0.05 * (i % 3))) for i in range(len(ts))]
put("sampler.ts", np.array(ts, dtype=np.int64)); put("sampler.losses", np.array(ls, dtype=np.float32))
put("sampler.weights.cold", rs.weights())
rs.update_with_all_losses(ts[:14], ls[:14])
put("sampler.weights.partial", rs.weights())
rs.update_with_all_losses(ts[14:], ls[14:])
put("sampler.weights.warm", rs.weights())

# Write safetensors: u64 header length, JSON header padded to 8 bytes, raw little-endian data.
DT = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
header, blobs, offset = {}, [], 0
for name in sorted(out):
    a = out[name]
    raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": DT[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
header["__metadata__"] = {"script": "make_diffusion_extra.py", "torch": th.__version__, "numpy": np.__version__,
                          "improved_diffusion": "1bc7bbbdc414d83d4abf2ad8cc1446dc36c4e4d5"}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(OUT, "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
print(f"wrote {OUT}: {len(out)} tensors, {os.path.getsize(OUT)} bytes")
