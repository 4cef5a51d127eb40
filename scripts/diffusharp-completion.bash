# Bash completion for diffusharp: commands, and each command's options as its --help lists them (kebab-case),
# asked once per command and kept for the shell's life. Load it with
#   source scripts/diffusharp-completion.bash
# It completes `diffusharp` (the dotnet tool) and `./diffusharp` (the repository's script); DIFFUSHARP_CMD names
# another way to run the program (e.g. "dotnet /path/DiffuSharp.Cli.dll").
declare -gA _diffusharp_options=()
declare -g _diffusharp_commands=""

_diffusharp_run() {
  local cmd=${DIFFUSHARP_CMD:-$1}
  $cmd "${@:2}" 2>/dev/null
}

_diffusharp() {
  local cur=${COMP_WORDS[COMP_CWORD]} prog=${COMP_WORDS[0]}
  COMPREPLY=()
  if [[ -z $_diffusharp_commands ]]; then
    _diffusharp_commands=$(_diffusharp_run "$prog" --help | sed -n 's/^  \([a-z0-9-]\+\)  .*/\1/p' | tr '\n' ' ')
  fi
  if ((COMP_CWORD == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "$_diffusharp_commands" -- "$cur")
    return
  fi
  local command=${COMP_WORDS[1]}
  if [[ $cur == -* ]]; then
    if [[ -z ${_diffusharp_options[$command]+set} ]]; then
      _diffusharp_options[$command]=$(_diffusharp_run "$prog" "$command" --help | sed -n 's/^  \(--[a-z0-9-]\+\).*/\1/p' | tr '\n' ' ')
    fi
    mapfile -t COMPREPLY < <(compgen -W "${_diffusharp_options[$command]}" -- "$cur")
    return
  fi
  mapfile -t COMPREPLY < <(compgen -f -- "$cur")          # values: file names
}

complete -o filenames -F _diffusharp diffusharp ./diffusharp
