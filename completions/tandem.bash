# bash completion for tandem. Install: source this file, or copy it to /etc/bash_completion.d/tandem
_tandem() {
  local cur prev words cword
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  local cmds="daemon cluster install uninstall list config start stop forcestop restart swap prim second state status log get set errd checker failover resetloop lab help"
  local home="${TANDEM_HOME:-/var/lib/tandem}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "$cmds" -- "$cur") ); return
  fi
  case "${COMP_WORDS[1]}" in
    cluster) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=( $(compgen -W "genkey" -- "$cur") ); return ;;
    lab) if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W "up down status poweroff boot cut unplug plug heal exec client" -- "$cur") )
         else COMPREPLY=( $(compgen -W "node1 node2 client witness default replication all" -- "$cur") ); fi; return ;;
  esac
  if [ "$prev" = "-m" ] || [ "$prev" = "--module" ]; then
    COMPREPLY=( $(compgen -W "$(ls "$home/modules" 2>/dev/null)" -- "$cur") ); return
  fi
  case "${COMP_WORDS[1]}" in
    errd) [ "$COMP_CWORD" -eq 2 ] && { COMPREPLY=( $(compgen -W "on off list" -- "$cur") ); return; } ;;
    checker|failover) [ "$COMP_CWORD" -eq 2 ] && { COMPREPLY=( $(compgen -W "on off" -- "$cur") ); return; } ;;
  esac
  case "${COMP_WORDS[1]}" in
    get) COMPREPLY=( $(compgen -W "-m -r --json --help" -- "$cur") ) ;;
    set) if [ "$prev" = "-v" ]; then COMPREPLY=( $(compgen -W "up down" -- "$cur") ); else COMPREPLY=( $(compgen -W "-m -r -v --help" -- "$cur") ); fi ;;
    prim|second) COMPREPLY=( $(compgen -W "-m --fullsync --help" -- "$cur") ) ;;
    status|list) COMPREPLY=( $(compgen -W "-m --json --help" -- "$cur") ) ;;
    log) COMPREPLY=( $(compgen -W "-m -n -f --help" -- "$cur") ) ;;
    install) COMPREPLY=( $(compgen -W "-m --force --help" -- "$cur") $(compgen -f -- "$cur") ) ;;
    *) COMPREPLY=( $(compgen -W "-m --help" -- "$cur") ) ;;
  esac
}
complete -F _tandem tandem
