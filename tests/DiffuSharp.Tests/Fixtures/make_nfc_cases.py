#!/usr/bin/env python3
# Writes nfc_cases.json: strings and their unicodedata.normalize("NFC", ·) as Python 3.11.2 (Unicode 14.0.0, the
# reference environment of the CLIP tokenizer fixtures) computes them. Every code point with a canonical
# decomposition appears decomposed (so every composition of the table is exercised) and as itself; then marks out of
# canonical order, blocked compositions, Hangul jamo, composition exclusions and singletons.
# Usage: /usr/bin/python3 make_nfc_cases.py > nfc_cases.json
import json, sys, unicodedata

cases = []
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF: continue
    d = unicodedata.decomposition(chr(cp))
    if d and not d.startswith('<'):
        cases.append(unicodedata.normalize('NFD', chr(cp)))
        cases.append(chr(cp))
cases += [
    "cafe\u0301 nai\u0308ve",                 # e + acute, i + diaeresis
    "e\u0301\u0323", "e\u0323\u0301",         # marks in either order: both become U+1EB9 U+0301
    "\u00e9\u0323", "a\u0328\u0301", "a\u0301\u0328", "\u1ea5\u0323",
    "a\u0346\u0300", "=\u0334\u0338", "a\u0301\u0301",  # blocked: a mark of the same class stands between
    "\u1100\u1161\u11a8 \u1100\u1161 \u110b\u1175\u11ab\u1100", "\uac00\u11a8", "\u1100\u1100\u1161",
    "\u0915\u093c \u0958", "\u212b \u2126 \u1e9b\u0323 \u0344 \uf900 \U0002f800",
    "\u0041\u030a\u0301 x\u0300\u0301 \u0061\u0315\u0300\u05ae\u0300\u0062", "\U0001d15e \U0001d160",
    "\u0300a", " \u0301", "Ελλάδα ΑΘΗΝΑ", "日本語 ｶﾀｶﾅ ﬁ",
]
rows = ",\n".join(json.dumps([s, unicodedata.normalize('NFC', s)]) for s in cases)
print(f'{{"python": "{sys.version.split()[0]}", "unicode": "{unicodedata.unidata_version}", "cases": [\n{rows}\n]}}')
