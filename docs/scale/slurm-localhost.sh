#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying slurm-array.sh (CI
# does: cmd/attnaudit/slurm_test.go). Needs root and Debian's munge,
# slurmctld, slurmd and slurm-client (`make setup` installs them). Nothing
# is written outside DIR: the munge key, slurm.conf, state, logs and sockets
# all live there.
#
#   slurm-localhost.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`
#   slurm-localhost.sh stop DIR    # ends the three daemons it started
#
# The node declares 16 CPUs, 64 GB and 8 GPUs whatever the machine has
# (SlurmdParameters=config_overrides), so slurm-array.sh's resource requests
# are accepted as written; the GPUs are names only.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$(realpath -m "$2")

# free_ports prints two distinct TCP ports nothing listens on (two
# clusters, or another Slurm, may share the machine).
free_ports() {
  python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))'
}

stop() {
  local name pid
  for name in slurmd slurmctld munged; do
    [[ -f $dir/$name.pid ]] || continue
    pid=$(<"$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/$name.pid"
  done
}

# wait_for DESCRIPTION COMMAND...: retries for 30 s, then shows the logs.
wait_for() {
  local what=$1; shift
  for _ in $(seq 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "slurm-localhost: $what did not come up within 30 s; logs in $dir:" >&2
  tail -n 20 "$dir"/*.log >&2 || true
  stop
  exit 1
}

start() {
  for tool in munged mungekey slurmctld slurmd sbatch sinfo; do
    command -v "$tool" >/dev/null || { echo "slurm-localhost: $tool not found (make setup installs munge, slurmctld, slurmd, slurm-client)" >&2; exit 1; }
  done
  [[ $(id -u) -eq 0 ]] || { echo "slurm-localhost: needs root (slurmd starts jobs as their user)" >&2; exit 1; }
  mkdir -p "$dir/state" "$dir/spool"
  chmod 700 "$dir"
  local host ctld_port slurmd_port
  host=$(hostname -s)
  read -r ctld_port slurmd_port < <(free_ports)

  mungekey --create --keyfile="$dir/munge.key" --force
  munged --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" --force
  wait_for "munged" munge --socket="$dir/munge.socket" -n

  cat >"$dir/slurm.conf" <<EOF
ClusterName=attnaudit-localhost
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=16 RealMemory=65536 Gres=gpu:8 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # Slurm counts a GPU per device file; empty files stand in for /dev/nvidiaN.
  touch "$dir"/gpu{0..7}
  printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/gpu[0-7]\n' "$host" "$dir" >"$dir/gres.conf"

  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" -i
  wait_for "slurmctld" scontrol ping
  slurmd -f "$SLURM_CONF"
  wait_for "slurmd" bash -c "sinfo -h -N -o %T | grep -qx idle"
  echo "export SLURM_CONF=$SLURM_CONF"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
