#!/usr/bin/env python3
"""controlnet_from_unet/: the config.json that diffusers 0.27.2's ControlNetModel.from_unet writes for a small
UNet2DConditionModel (unet_config.json, the UNet's own config.json), with conditioning_embedding_out_channels
(8, 16, 32) and 3 conditioning channels. ControlNetFromUNetTests builds the same ControlNet in C# and compares.

    . ../shared/diffusers/env.sh && /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/make_controlnet_from_unet.py
"""
import json, os, tempfile

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "controlnet_from_unet")


def main():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, attention_head_dim=(2, 4), cross_attention_dim=16, norm_num_groups=8,
        mid_block_type="UNetMidBlock2DCrossAttn")
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32), conditioning_channels=3)
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("unet_config.json", unet), ("controlnet_config.json", net)):
            model.save_config(tmp)
            with open(os.path.join(tmp, "config.json")) as f:
                cfg = json.load(f)
            with open(os.path.join(OUT, name), "w") as f:
                json.dump(cfg, f, indent=2, sort_keys=True)
                f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
