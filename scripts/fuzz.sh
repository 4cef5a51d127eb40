#!/usr/bin/env bash
# Runs N structure-aware mutated inputs (default 100000) through every DiffuSharp parser and prints a table:
# parsed, clean errors (InvalidDataException naming the file), anything else (bugs, minimised into fuzz-findings/).
#   scripts/fuzz.sh [N] [--seed S] [--only NAME] [--list]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
[[ $# -gt 0 ]] && shift
dotnet build src/DiffuSharp.Fuzz -c Release -v quiet -nologo >/dev/null
exec nice -n 5 dotnet src/DiffuSharp.Fuzz/bin/Release/net10.0/DiffuSharp.Fuzz.dll "$n" "$@"
