# Makes Fixtures/diffusers_extra/: diffusers components with non-default config values (the keys the fixtures in
# diffusers/ leave at their defaults), in the format of diffusers/ (README.upstream.md): NAME/ as save_pretrained
# writes it, NAME.io.safetensors with input.*, output.* (float32) and metadata model_class, weights_dir, call.
# Versions: diffusers 0.27.2, torch 1.13.1 (Debian python3-torch, prints 1.13.0a0), CPU, 1 thread.
# Run:  DIFFUSERS_REF_PEERS=/path/to/.peers . shared/diffusers/env.sh && /usr/bin/python3 make_diffusers_extra.py
import json, os, sys
import torch
import diffusers
from diffusers import UNet2DConditionModel, UNet2DModel, AutoencoderKL, ControlNetModel
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "diffusers_extra")
os.makedirs(OUT, exist_ok=True)


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


def randn(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def write(name, model, model_class, inputs, outputs, call, weights_dir=None):
    if weights_dir is None:
        model.save_pretrained(os.path.join(OUT, name), safe_serialization=True)
        weights_dir = name
    tensors = {f"input.{k}": v.contiguous() for k, v in inputs.items()}
    tensors.update({f"output.{k}": v.float().contiguous() for k, v in outputs.items()})
    meta = {"model_class": model_class, "weights_dir": weights_dir, "call": json.dumps(call),
            "torch": torch.__version__, "diffusers": diffusers.__version__}
    save_file(tensors, os.path.join(OUT, name + ".io.safetensors"), metadata=meta)
    print(name, {k: tuple(v.shape) for k, v in outputs.items()})


# 1. UNet2DConditionModel with every block-shaping key away from its default; an input size that is not a multiple of
#    the up factor (upsampling to the skip's size), float timesteps, class labels.
torch.manual_seed(0)
unet = perturb(UNet2DConditionModel(
    sample_size=16, in_channels=4, out_channels=3, center_input_sample=True, flip_sin_to_cos=False, freq_shift=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"), mid_block_type="UNetMidBlock2D",
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"), only_cross_attention=[True, False, False],
    block_out_channels=(16, 32, 32), layers_per_block=[1, 2, 1], mid_block_scale_factor=1.5, act_fn="gelu",
    norm_num_groups=8, norm_eps=1e-4, cross_attention_dim=24, transformer_layers_per_block=[2, 1, 1],
    attention_head_dim=[2, 4, 4], use_linear_projection=True, upcast_attention=True, resnet_time_scale_shift="scale_shift",
    time_embedding_dim=40, time_embedding_act_fn="silu", timestep_post_act="silu", conv_in_kernel=5, conv_out_kernel=1,
    num_class_embeds=5, resnet_out_scale_factor=2.0, resnet_skip_time_act=True), 1)
inp = {"sample": randn(2, 2, 4, 13, 11), "timestep": torch.tensor([37.5, 901.0]),
       "encoder_hidden_states": randn(3, 2, 5, 24), "class_labels": torch.tensor([1, 4], dtype=torch.int64)}
with torch.no_grad():
    out = unet(inp["sample"], inp["timestep"], inp["encoder_hidden_states"], class_labels=inp["class_labels"]).sample
write("unet2d_condition_variants", unet, "UNet2DConditionModel", inp, {"sample": out}, {})

# 2. The ControlNet fixture of diffusers/ in guess mode with a conditioning scale.
cn = ControlNetModel.from_pretrained(os.path.join(HERE, "diffusers", "controlnet")).eval()
inp = {"sample": randn(4, 2, 4, 16, 16), "timestep": torch.tensor([10, 700], dtype=torch.int64),
       "encoder_hidden_states": randn(5, 2, 7, 32), "controlnet_cond": torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(6)),
       "conditioning_scale": torch.tensor(0.7)}
with torch.no_grad():
    r = cn(inp["sample"], inp["timestep"], inp["encoder_hidden_states"], inp["controlnet_cond"], conditioning_scale=0.7, guess_mode=True)
outs = {f"down_block_res_sample.{i:02d}": t for i, t in enumerate(r.down_block_res_samples)}
outs["mid_block_res_sample"] = r.mid_block_res_sample
write("controlnet_guess_mode", cn, "ControlNetModel", inp, outs, {"guess_mode": True}, weights_dir="../diffusers/controlnet")

# 3. ControlNetModel with BGR conditioning, global pooling, explicit num_attention_heads, linear projection, two
#    transformer layers, scale-shift resnets, a plain mid block, class labels, a two-step conditioning embedding.
torch.manual_seed(0)
cn2 = perturb(ControlNetModel(
    in_channels=4, conditioning_channels=3, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), mid_block_type="UNetMidBlock2D",
    block_out_channels=(16, 32), layers_per_block=2, norm_num_groups=4, cross_attention_dim=12,
    transformer_layers_per_block=2, attention_head_dim=8, num_attention_heads=[2, 4], use_linear_projection=True,
    resnet_time_scale_shift="scale_shift", num_class_embeds=3, controlnet_conditioning_channel_order="bgr",
    conditioning_embedding_out_channels=(8, 16), global_pool_conditions=True, mid_block_scale_factor=0.8), 2)
inp = {"sample": randn(7, 2, 4, 8, 8), "timestep": torch.tensor([3, 250], dtype=torch.int64),
       "encoder_hidden_states": randn(8, 2, 4, 12), "controlnet_cond": torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(9)),
       "conditioning_scale": torch.tensor(1.3), "class_labels": torch.tensor([2, 0], dtype=torch.int64)}
with torch.no_grad():
    r = cn2(inp["sample"], inp["timestep"], inp["encoder_hidden_states"], inp["controlnet_cond"], conditioning_scale=1.3,
            class_labels=inp["class_labels"])
outs = {f"down_block_res_sample.{i:02d}": t for i, t in enumerate(r.down_block_res_samples)}
outs["mid_block_res_sample"] = r.mid_block_res_sample
write("controlnet_variants", cn2, "ControlNetModel", inp, outs, {})

# 4. UNet2DModel: class embeddings, scale-shift resnets, the mid attention's own group count, one head per block,
#    centred input, sin-first sinusoids with a frequency shift, padding-0 downsampling, a mid scale factor.
torch.manual_seed(0)
u2 = perturb(UNet2DModel(
    sample_size=8, in_channels=2, out_channels=1, center_input_sample=True, flip_sin_to_cos=False, freq_shift=1,
    down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
    block_out_channels=(16, 32), layers_per_block=2, mid_block_scale_factor=1.41, downsample_padding=0,
    attention_head_dim=None, norm_num_groups=8, attn_norm_num_groups=4, norm_eps=1e-6,
    resnet_time_scale_shift="scale_shift", num_class_embeds=4), 3)
inp = {"sample": randn(10, 2, 2, 8, 8), "timestep": torch.tensor([5, 999], dtype=torch.int64),
       "class_labels": torch.tensor([3, 1], dtype=torch.int64)}
with torch.no_grad():
    out = u2(inp["sample"], inp["timestep"], class_labels=inp["class_labels"]).sample
write("unet2d_variants", u2, "UNet2DModel", inp, {"sample": out}, {})

# 5. AutoencoderKL: three levels, GELU resnets, other channel counts, odd image sizes.
torch.manual_seed(0)
vae = perturb(AutoencoderKL(
    in_channels=1, out_channels=2, down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(8, 16, 16), layers_per_block=1, act_fn="gelu", latent_channels=3, norm_num_groups=4,
    sample_size=16, scaling_factor=0.5), 4)
inp = {"image": randn(11, 1, 1, 14, 10), "latents": randn(12, 1, 3, 3, 5)}
with torch.no_grad():
    post = vae.encode(inp["image"]).latent_dist
    outs = {"latent_mean": post.mean, "latent_logvar": post.logvar, "latent_std": post.std,
            "decoded_from_latents": vae.decode(inp["latents"]).sample, "reconstruction_mode": vae(inp["image"]).sample}
write("autoencoder_kl_variants", vae, "AutoencoderKL", inp, outs, {})
