#!/usr/bin/env bash
# DiffuSharp in your own program: the README's "Use it from C#" sampling example (10 samples of the shipped model,
# 50-step DDIM) built in a fresh console project against the NuGet package from a local folder, timed beside the
# command line doing the same (`sample --n 10 --batch 10 --steps 50`), whole processes (start-up, model load, JIT,
# sampling, PNG), alternating, median of RUNS: wall seconds and CPU seconds (user + system). Variants of the consumer project:
#   package      as it comes: the package's build/DiffuSharp.props turns tiered compilation off
#   tiered       <TieredCompilation>true</TieredCompilation> in the project: the .NET default, what a consumer had
#                before the package carried its props
#   loops-full   tiered, but methods with loops compiled fully optimised at once (TieredCompilationQuickJitForLoops=false)
# usage (from the repository root): scripts/bench_consumer.sh [RUNS=5]
set -euo pipefail
runs=${1:-5}
repo=$(pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
machine=${NUGET_PACKAGES:-$HOME/.nuget/packages}
export NUGET_PACKAGES=$root/packages DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

dotnet build -c Release src/DiffuSharp.Cli -nodeReuse:false >/dev/null
dotnet pack src/DiffuSharp -c Release -o "$root/feed" --no-build -nodeReuse:false >/dev/null
cat > "$root/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration><packageSources><clear /><add key="local" value="$root/feed" /><add key="machine" value="$machine" /></packageSources></configuration>
XML
# the first csharp block of README.md's "Use it from C#"
awk '/^## Use it from C#/{s=1;next} s&&/^## /{exit} s&&/^```csharp/{b=1;next} b&&/^```/{exit} b{print}' README.md > "$root/Program.cs"

declare -A props=([package]="" [tiered]="<TieredCompilation>true</TieredCompilation>"
                  [loops-full]="<TieredCompilation>true</TieredCompilation><TieredCompilationQuickJitForLoops>false</TieredCompilationQuickJitForLoops>")
variants=(package tiered loops-full)
for v in "${variants[@]}"; do
  mkdir -p "$root/$v"
  cp "$root/Program.cs" "$root/nuget.config" "$root/$v/"
  cat > "$root/$v/consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable>${props[$v]}</PropertyGroup>
  <ItemGroup><PackageReference Include="DiffuSharp" Version="0.1.0" /></ItemGroup>
</Project>
XML
  (cd "$root/$v" && dotnet build -c Release -nodeReuse:false --disable-build-servers >/dev/null)
  printf '%-11s runtimeconfig: %s\n' "$v" "$(tr -d ' \n' < "$root/$v/bin/Release/net10.0/consumer.runtimeconfig.json" | grep -o '"System.Runtime.Tiered[^,}]*' | tr '\n' ' ')"
done
mkdir -p "$root/work" && ln -s "$repo/models" "$root/work/models"

declare -A times cpus
cli="$repo/src/DiffuSharp.Cli/bin/Release/net10.0/DiffuSharp.Cli.dll"
for ((r = 1; r <= runs; r++)); do
  for v in cli "${variants[@]}"; do
    if [[ $v == cli ]]; then cmd=(dotnet "$cli" sample --n 10 --batch 10 --steps 50 --out cli.png)
    else cmd=(dotnet "$root/$v/bin/Release/net10.0/consumer.dll"); fi
    # wall seconds, and CPU seconds (user + system: less moved by other processes on a shared machine)
    read -r wall user sys < <(cd "$root/work" && /usr/bin/time -f '%e %U %S' "${cmd[@]}" 2>&1 >/dev/null | tail -1)
    times[$v]+="$wall "
    cpus[$v]+="$(echo "$user + $sys" | bc) "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "seconds per process, $runs runs each, alternating: median wall (all runs) | median CPU (all runs)"
for v in cli "${variants[@]}"; do
  printf '  %-11s %6.2f s (%s) | %6.2f s (%s)\n' "$v" "$(echo ${times[$v]} | median)" "${times[$v]% }" "$(echo ${cpus[$v]} | median)" "${cpus[$v]% }"
done
