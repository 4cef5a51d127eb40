#!/usr/bin/env python3
# Writes clip_tokenizer_extra.json: more prompts through transformers' CLIPTokenizer (4.39.0.dev0 from source, slow
# Python tokenizer, no ftfy: the reference environment of diffusers/clip_tokenizer.json), for what the shared
# fixture does not reach: letters and digits outside the BMP, Python's case mapping (final sigma, İ, titlecase),
# decomposed accents (NFC), compatibility characters, control and format characters, every kind of whitespace,
# added tokens inside a prompt, contractions, scripts without spaces. Each case: ids and tokens with the default pad
# token, and ids with pad "!" (SD 2.x), where "!" becomes an added token split out of the text.
# Usage (from this folder): . /work/shared/diffusers/env.sh && /usr/bin/python3 make_clip_tokenizer_extra.py > clip_tokenizer_extra.json
import json, sys
import transformers, transformers.tokenization_utils_base as tub
# the slow tokenizer's AddedToken without the Rust `tokenizers` package, fixed as shared/diffusers/verify_pipelines.py does
tub.AddedToken.__hash__ = lambda self: hash(self.content)
tub.AddedToken.__setstate__ = lambda self, state: self.__dict__.update(state)
tub.AddedToken.__getstate__ = lambda self: dict(self.__dict__)
from transformers import CLIPTokenizer

d = "diffusers/clip_tokenizer/"
eos = CLIPTokenizer(d + "vocab.json", d + "merges.txt")
bang = CLIPTokenizer(d + "vocab.json", d + "merges.txt", pad_token="!")
prompts = [
    "a\U0001d400b \U0001d7cf\U0001d7d0 x\u00b2\u00b3 \u00bd \u2167",
    "\u039f\u0394\u039f\u03a3 \u03a3\u0391 \u0130stanbul \u01c5emal \u01c4 \u01c6 MIXED \u00c0\u00c9\u00ce\u00d5\u00dc",
    "cafe\u0301 re\u0301sume\u0301 \u1ea1\u0302 \u1100\u1161\u11a8",
    "\ufb01ne \uff46\uff55\uff4c\uff4c \uff21\uff22\uff23 \u2126 \u212b",
    "\uf900 \U0002f800 \U00020000\U00020001 \u4e00\u4e8cx\u4e09",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family \U0001f3f3\ufe0f\u200d\U0001f308 \u2764\ufe0f",
    "tab\tnew\nline\r\u00a0nbsp\u2003em\u2028ls\u3000ideo",
    "control\u0007bell\u200bzw\ufeffbom\u00adsoft \ue000pua",
    "<|endoftext|> inside <|startoftext|>text<|endoftext|>x",
    "hello!!world 'tis y'all's '''quoted''' I'M WE'LL don\u2019t",
    "\ud55c\uad6d\uc5b4 \u3072\u3089\u304c\u306a \u30ab\u30bf\u30ab\u30ca \u0e44\u0e17\u0e22 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
    "3.14159 1,000,000 2024-01-01 \u0663\u0664 \u0967\u0968",
    "   leading and   trailing   ",
    "supercalifragilisticexpialidocious" * 3,
    "(masterpiece:1.2), best quality, ((ultra-detailed)), [[lowres]], <lora:add_detail:0.6>, 8k uhd!",
]
cases = []
for p in prompts:
    ids = eos(p)["input_ids"]
    cases.append({"prompt": p, "ids": ids, "tokens": eos.convert_ids_to_tokens(ids), "ids_pad_bang": bang(p)["input_ids"]})
out = {"versions": {"transformers": transformers.__version__, "python": sys.version.split()[0]}, "ftfy": "absent", "cases": cases}
print(json.dumps(out, ensure_ascii=True, indent=1))
