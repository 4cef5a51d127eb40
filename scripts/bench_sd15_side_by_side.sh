#!/usr/bin/env bash
# Stable Diffusion 1.5 components on DiffuSharp and on PyTorch 1.13 + diffusers 0.27, side by side on this machine:
# for each component (clip, unet, vae) and each round, DiffuSharp's `bench sd15 --only C --json` then the reference
# data's sd15/sd15_bench.py --child C (each in its own process, so peak RSS is per component), PyTorch with the
# settings that make it fastest here (OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 OMP_WAIT_POLICY=PASSIVE,
# 2 threads, ONEDNN_MAX_CPU_ISA unset). Both report the median wall time of 3 calls after a warm-up, and the CPU time.
# Prints one row per component and round: wall, CPU, peak RSS of both, and DiffuSharp / PyTorch ratios.
#   scripts/bench_sd15_side_by_side.sh [ROUNDS] [COMPONENTS]     e.g. scripts/bench_sd15_side_by_side.sh 2 clip,unet
# SD15_REPEATS=N times N calls of ours after the warm-up (default 3, as PyTorch's side always does).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/torch_blas_check.sh"
rounds="${1:-1}"
comps="${2:-clip,unet,vae}"
ref="${SD15_REF:-$root/../shared/diffusers/sd15}"
[ -f "$ref/sd15_bench.py" ] || { echo "error: $ref/sd15_bench.py not found (set SD15_REF to the reference data's sd15 folder)" >&2; exit 1; }
"$root/diffusharp" bench sd15 --help >/dev/null     # builds once, before any timing

field() { python3 -c "import json,sys; d={}; [d.update({j['name']: j['value']}) for j in map(json.loads, sys.stdin) if j]; print(d.get('$1', 'nan'))"; }

printf '%-6s %5s  %12s %12s %6s  %11s %11s  %9s %9s %6s  %s\n' component round ours_ms torch_ms ratio ours_cpu_ms torch_cpu_ms ours_MiB torch_MiB ratio load1
for ((r = 1; r <= rounds; r++)); do
  for c in ${comps//,/ }; do
    load="$(cut -d' ' -f1 /proc/loadavg)"
    ours="$(nice -n 5 "$root/diffusharp" bench sd15 --only "$c" --repeats "${SD15_REPEATS:-3}" --json)"
    echo "$ours" | sed "s/^/# ours $c: /" >&2                      # kept even if PyTorch's side is stopped
    torch="$(cd "$ref" && . ./env.sh && env -u ONEDNN_MAX_CPU_ISA OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 \
      OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 nice -n 5 /usr/bin/python3 sd15_bench.py --child "$c" | grep '^RESULT ' | cut -c8-)"
    name=$([ "$c" = clip ] && echo text_encoder || ([ "$c" = vae ] && echo vae_decode || echo unet))
    oms="$(echo "$ours" | field "sd15_${name}_ms")"; ocpu="$(echo "$ours" | field "sd15_${name}_cpu_ms")"; omb="$(echo "$ours" | field sd15_peak_rss_mb)"
    read -r tms tcpu tmb < <(echo "$torch" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['median_s']*1000, d['median_cpu_s']*1000, d['peak_rss_mib'])")
    python3 -c "print('%-6s %5d  %12.1f %12.1f %6.2f  %11.0f %11.0f  %9.0f %9.0f %6.2f  %s' % ('$c', $r, $oms, $tms, $oms/$tms, $ocpu, $tcpu, $omb, $tmb, $omb/$tmb, '$load'))"
  done
done
