# Reference data for DiffuSharp's UNet2DModel (DDPM) training and its DDPMPipeline folders, made by diffusers 0.27.2
# itself (torch 1.13.1 CPU, one thread; the reference environment of diffusers/):
#   ddpm_pipeline/              DDPMPipeline(unet, scheduler).save_pretrained: model_index.json, unet/ (a tiny
#                               UNet2DModel: 8×8 gray, channels 8, 16, attention on the second level, weights perturbed
#                               so no parameter keeps its init value), scheduler/ (DDPMScheduler, linear betas).
#   ddpm_pipeline.safetensors   tensors, metadata (JSON strings) for the configs:
#     x0, noise, timesteps                    a training batch (4 images) and its timesteps
#     {epsilon,v_prediction,sample}.noisy     DDPMScheduler(prediction_type=..., beta_schedule=linear |
#                                             squaredcos_cap_v2 | scaled_linear).add_noise(x0, noise, timesteps)
#     {...}.output, {...}.loss                the UNet's output on it and the training loss: train_unconditional.py's
#                                             for epsilon (mse to ε) and sample (SNR ᾱ/(1−ᾱ)-weighted mse to x0), and
#                                             mse to get_velocity for v_prediction (as diffusers' other train scripts)
#     lr.{cosine,linear,constant_with_warmup} get_scheduler(name, num_warmup_steps=3, num_training_steps=10): the lr
#                                             of optimizer steps 0..11 for a base lr of 1
#     ema_decay                               EMAModel(decay=0.999, use_ema_warmup=True, inv_gamma=1, power=3/4)
#                                             .get_decay(k) for k = 1..3000
#     x_T, step_noise                         initial noise (2 images) and the noise of 5 DDPM steps
#     ddim_image, ddpm_image                  DDPMPipeline.__call__(batch_size=2, num_inference_steps=5,
#                                             output_type="np") with DDIMScheduler.from_config (eta 0) and the
#                                             folder's DDPMScheduler, randn_tensor replaced by x_T and step_noise
#   . ../../../../shared/diffusers/env.sh && /usr/bin/python3 make_ddpm_pipeline.py      (from this folder)
import json, os, shutil
import numpy as np
import torch
import torch.nn.functional as F
import diffusers
from diffusers import UNet2DModel, DDPMScheduler, DDIMScheduler, DDPMPipeline
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
import diffusers.pipelines.ddpm.pipeline_ddpm as pipeline_ddpm
import diffusers.schedulers.scheduling_ddpm as scheduling_ddpm
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ddpm_pipeline")

def randn(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))

torch.manual_seed(0)
unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                   down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                   norm_num_groups=4, attention_head_dim=8)
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for p in unet.parameters():
        p.add_(torch.randn(p.shape, generator=g) * 0.02)
unet.eval()
scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
shutil.rmtree(OUT, ignore_errors=True)
DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(OUT, safe_serialization=True)

t = {}
meta = {"diffusers": diffusers.__version__, "torch": torch.__version__}
t["x0"] = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
t["noise"] = randn(3, 4, 1, 8, 8)
t["timesteps"] = torch.tensor([0, 17, 500, 999], dtype=torch.int64)
for pred, betas in [("epsilon", "linear"), ("v_prediction", "squaredcos_cap_v2"), ("sample", "scaled_linear")]:
    s = DDPMScheduler(num_train_timesteps=1000, beta_schedule=betas, prediction_type=pred)
    meta[f"{pred}.scheduler_config"] = json.dumps({k: v for k, v in s.config.items() if k != "_use_default_values"}, sort_keys=True)
    noisy = s.add_noise(t["x0"], t["noise"], t["timesteps"])
    with torch.no_grad():
        out = unet(noisy, t["timesteps"]).sample
    if pred == "epsilon":
        loss = F.mse_loss(out.float(), t["noise"].float())
    elif pred == "v_prediction":
        loss = F.mse_loss(out.float(), s.get_velocity(t["x0"], t["noise"], t["timesteps"]).float())
    else:
        alpha_t = s.alphas_cumprod[t["timesteps"]].reshape(-1, 1, 1, 1)
        loss = (alpha_t / (1 - alpha_t) * F.mse_loss(out.float(), t["x0"].float(), reduction="none")).mean()
    t[f"{pred}.noisy"], t[f"{pred}.output"], t[f"{pred}.loss"] = noisy, out, loss.reshape(1)

for name in ["cosine", "linear", "constant_with_warmup"]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = get_scheduler(name, optimizer=opt, num_warmup_steps=3, num_training_steps=10)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    t[f"lr.{name}"] = torch.tensor(lrs, dtype=torch.float64)
ema = EMAModel(unet.parameters(), decay=0.999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4)
t["ema_decay"] = torch.tensor([ema.get_decay(k) for k in range(1, 3001)], dtype=torch.float64)

t["x_T"] = randn(4, 2, 1, 8, 8)
t["step_noise"] = randn(5, 5, 2, 1, 8, 8)
pipe = DDPMPipeline.from_pretrained(OUT)
pipe.set_progress_bar_config(disable=True)
for key, sched in [("ddim_image", DDIMScheduler.from_config(pipe.scheduler.config)), ("ddpm_image", pipe.scheduler)]:
    calls = [0]
    def first(shape, generator=None, device=None, dtype=None, layout=None):
        return t["x_T"].clone()
    def step(shape, generator=None, device=None, dtype=None, layout=None):
        calls[0] += 1
        return t["step_noise"][calls[0] - 1].clone()
    pipeline_ddpm.randn_tensor, scheduling_ddpm.randn_tensor = first, step
    pipe.scheduler = sched
    with torch.no_grad():
        t[key] = torch.from_numpy(pipe(batch_size=2, num_inference_steps=5, output_type="np").images.copy())
    meta[f"{key}.noise_draws"] = str(calls[0])

save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(HERE, "ddpm_pipeline.safetensors"), metadata=meta)
print({k: tuple(v.shape) for k, v in t.items()}, meta["ddpm_image.noise_draws"])
