# fish completion for tandem. Install: copy to ~/.config/fish/completions/tandem.fish
set -l cmds daemon cluster install uninstall list config start stop forcestop restart swap prim second state status log get set errd checker failover resetloop lab
complete -c tandem -f -n "not __fish_seen_subcommand_from $cmds" -a "$cmds"
complete -c tandem -f -n "__fish_seen_subcommand_from cluster" -a genkey
complete -c tandem -f -n "__fish_seen_subcommand_from lab" -a "up down status poweroff boot cut unplug plug heal exec client node1 node2 client witness default replication all"
complete -c tandem -s m -l module -x -a "(ls (set -q TANDEM_HOME; and echo $TANDEM_HOME; or echo /var/lib/tandem)/modules 2>/dev/null)" -d module
complete -c tandem -l json -d "machine-readable output"
complete -c tandem -l fullsync -n "__fish_seen_subcommand_from prim second" -d "compare every file at the next reintegration"
complete -c tandem -l force -n "__fish_seen_subcommand_from install cluster" -d "replace"
complete -c tandem -s f -l follow -n "__fish_seen_subcommand_from log" -d "follow the log"
complete -c tandem -f -n "__fish_seen_subcommand_from errd" -a "on off list"
complete -c tandem -f -n "__fish_seen_subcommand_from checker failover" -a "on off"
complete -c tandem -s r -l resource -x -n "__fish_seen_subcommand_from get set" -d "resource class.ident"
complete -c tandem -s v -l value -x -n "__fish_seen_subcommand_from set" -a "up down" -d "state to set"
