#!/usr/bin/env bash
# Benchmark (not a test): what a cluster of real `clustershazbot serve` processes on 127.0.0.1
# costs and how fast it agrees, at several sizes, beside the simulator's figures for the same
# settings. For each size N it starts a store (`clustershazbot store`) holding a master list of
# every node (online, lastUpdate 0, as an operator writes it), starts the N nodes at a steady
# pace, and measures:
#
#   convergence   seconds from the first node's start until every node lists every node
#                 online (and nothing else), by sweeps of every node's `GET clustershazbot/list`
#                 without the control secret: the online records only, compressed, counted
#                 without a JSON parser (bench/scale.lua); a sweep's end is the time taken
#   CPU           utime + stime (/proc/PID/stat) of every node over a steady window after
#                 convergence, per node and per round (the window over the interval)
#   PSS           /proc/PID/smaps_rollup at the window's end, mean over the nodes
#   bytes         request and answer bodies of every gossip exchange in the window, as each
#                 node's debug log line gives them (libcurl's upload and download counts: on
#                 the wire, compressed, headers not counted; and the same as plain JSON),
#                 summed over the nodes, per node and per round
#   detection     1 % of the nodes (at least 1) killed with SIGKILL: seconds until every live
#                 node lists exactly the live nodes online (a killed node may be offline or
#                 forgotten), by the same sweeps
#
# then prints a table, writes a CSV, runs `clustershazbot simulate --scenario converge,kill`
# for the same settings and start pace at the real sizes and beyond (up to 3,000 by default), and draws
# convergence and detection time against cluster size with gnuplot (PNG).
#
#   bench/scale_bench.sh [options]
#     --sizes "100 300 1000"    cluster sizes run for real (at most 3,999: the ports below)
#     --sim-sizes "100 300 1000 3000"   the simulator's curve ("" for none; 10000 takes 40 min and 20 GB here)
#     --sim-from CSV            take the simulator's rows from an earlier run's CSV (beside --sim-sizes)
#     --real-from CSV           take the real rows from an earlier run's CSV (beside --sizes)
#     --sim-seeds K             simulated runs per size up to 1,000 nodes, their median shown (default 5)
#     --interval S              SHAZBOT_GOSSIP_INTERVAL (default 2; with --profile, the profile's)
#     --profile NAME            SHAZBOT_PROFILE for every node and the simulator
#     --set NAME=VALUE          another setting for every node and the simulator (repeatable)
#     --seeds K                 the master list names the first K nodes only (default: every node)
#     --start-rate R            nodes started per second (default 100)
#     --steady S                length of the steady window (default 10 rounds)
#     --max-wait S              longest wait for convergence and for detection (default 180)
#     --base-port P             the store's port; node i listens on P + i (default 20000)
#     --out DIR                 where the CSV, the plot and the logs go (default bench/out/scale)
#     --bin PATH                the program (default build/clustershazbot)
#
# Everything it starts is killed on exit (SIGKILL, by the PIDs it started), also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

sizes="100 300 1000"
sim_sizes="100 300 1000 3000"
sim_from=""
real_from=""
interval=""
interval_given=""
profile=""
settings=()
seeds=""
sim_seeds=5
start_rate=100
steady=""
max_wait=180
base_port=20000
out=bench/out/scale
bin=build/clustershazbot
while (($#)); do
  case $1 in
  --sizes) sizes=$2; shift 2 ;;
  --sim-sizes) sim_sizes=$2; shift 2 ;;
  --sim-from) sim_from=$2; shift 2 ;;
  --real-from) real_from=$2; shift 2 ;;
  --interval) interval=$2; interval_given=1; shift 2 ;;
  --profile) profile=$2; shift 2 ;;
  --set) settings+=("$2"); shift 2 ;;
  --seeds) seeds=$2; shift 2 ;;
  --start-rate) start_rate=$2; shift 2 ;;
  --sim-seeds) sim_seeds=$2; shift 2 ;;
  --steady) steady=$2; shift 2 ;;
  --max-wait) max_wait=$2; shift 2 ;;
  --base-port) base_port=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --bin) bin=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "scale_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $bin in /*) ;; *) bin=$here/$bin ;; esac
[ -x "$bin" ] || { echo "scale_bench: no program at $bin (tools/setup.sh build)" >&2; exit 2; }
for tool in curl lua5.4 gnuplot shuf; do
  command -v $tool >/dev/null || { echo "scale_bench: $tool is missing (tools/setup.sh installs it)" >&2; exit 2; }
done
for n in $sizes; do
  ((n >= 2 && base_port + n <= 65535)) || { echo "scale_bench: size $n does not fit from port $base_port" >&2; exit 2; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
helper="lua5.4 $here/bench/scale.lua"

# Every node holds a descriptor per client and per peer transfer; raise our limit, which the
# nodes inherit (they raise their own soft limit to the hard one as well).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The settings every node and the simulator share. With a profile and no --interval, the
# interval is the profile's: the simulator, given the same settings, says which it is.
sim_set=()
[ -z "$profile" ] || sim_set+=(--set "SHAZBOT_PROFILE=$profile")
for s in "${settings[@]}"; do sim_set+=(--set "$s"); done
if [ -z "$interval" ]; then
  if [ -n "$profile" ]; then
    "$bin" simulate --nodes 2 --scenario converge --json "${sim_set[@]}" >"$out/profile.json"
    interval=$($helper sim "$out/profile.json" | cut -d' ' -f3)
  else
    interval=2
  fi
fi
steady=${steady:-$(awk -v i="$interval" 'BEGIN { print 10 * i }')}
hz=$(getconf CLK_TCK)

pids=()
store_pid=""
stop_all() {
  local p
  {
    for p in "${pids[@]}" $store_pid; do kill -KILL "$p" || true; done
    for p in "${pids[@]}" $store_pid; do wait "$p" || true; done
  } 2>/dev/null
  pids=()
  store_pid=""
}
trap stop_all EXIT
trap 'exit 130' INT TERM HUP PIPE

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# Convergence $1 less the start spread $2: what gossip took once every node ran.
after_start() { [ "$1" = NA ] && echo NA || awk -v c="$1" -v s="$2" 'BEGIN { d = c - s; printf "%.2f", (d > 0 ? d : 0) }'; }

# One sweep: every node of the file $1 (ports) asked for its list at once (64 at a time);
# prints how many of them list exactly $2 nodes online and none of the URLs in the file $3.
sweep() {
  local ports=$1 expected=$2 dead=$3 dir=$work/sweep
  rm -rf "$dir" && mkdir -p "$dir"
  awk -v dir="$dir" '{ printf "url = \"http://127.0.0.1:%s/clustershazbot/list\"\noutput = \"%s/%s.json\"\n", $1, dir, $1 }' \
    "$ports" >"$work/sweep.curl"
  curl --parallel --parallel-max 64 -s -m 2 --compressed -K "$work/sweep.curl" >/dev/null 2>&1 || true
  $helper agree "$dir" "$ports" "$expected" "$dead"
}

# Sweeps until every node agrees (or $4 seconds have passed since $5); at most one sweep a
# half-interval, so that watching costs the nodes little. Prints the seconds from $5 to the
# end of the agreeing sweep, or NA, and the sweeps' mean length.
wait_agreed() {
  local ports=$1 expected=$2 dead=$3 bound=$4 since=$5
  local asked total=0 count=0 t_start t_end agreeing
  asked=$(wc -l <"$ports")
  while :; do
    t_start=$(now)
    agreeing=$(sweep "$ports" "$expected" "$dead" | cut -d' ' -f1)
    t_end=$(now)
    total=$(awk -v t="$total" -v a="$t_start" -v b="$t_end" 'BEGIN { print t + b - a }')
    count=$((count + 1))
    if ((agreeing == asked)); then
      echo "$(elapsed "$since" "$t_end") $(awk -v t="$total" -v c="$count" 'BEGIN { printf "%.2f", t / c }')"
      return
    fi
    if awk -v a="$since" -v b="$t_end" -v m="$bound" 'BEGIN { exit !(b - a > m) }'; then
      echo "NA $(awk -v t="$total" -v c="$count" 'BEGIN { printf "%.2f", t / c }')"
      echo "  not agreed within ${bound} s: $agreeing of $asked nodes" >&2
      return
    fi
    # The rest of the half-interval, if the sweep was shorter.
    sleep "$(awk -v a="$t_start" -v b="$(now)" -v i="$interval" 'BEGIN { r = i / 2 - (b - a); printf "%.3f", (r > 0 ? r : 0) }')"
  done
}

csv=$out/scale.csv
work_sim=$out/sim-runs
[ -n "$profile" ] && label="profile $profile, interval $interval s" || label="interval $interval s"
for s in "${settings[@]}"; do label="$label, $s"; done
csv_label=${label//,/;} # a field of the CSV
echo "kind,nodes,settings,start_spread_s,converge_s,after_last_start_s,killed,detect_s,cpu_ms_node_round,pss_kb,pss_max_kb,wire_bytes_node_round,plain_bytes_node_round,exchanges_node_round,sweep_s,detect_min_s,detect_max_s,sim_runs,not_started" >"$csv"

[ -z "$real_from" ] || grep '^real,' "$real_from" >>"$csv" || true
for n in $sizes; do
  work=$out/n$n
  rm -rf "$work" && mkdir -p "$work/logs"
  echo "== $n nodes ($label), logs in $work" >&2
  busy=$(ss -Hltn "sport >= :$base_port and sport <= :$((base_port + n))" | wc -l)
  ((busy == 0)) || { echo "scale_bench: $busy ports of $base_port..$((base_port + n)) are taken (--base-port)" >&2; exit 1; }
  $helper master "$work/master.json" "$base_port" "$((seeds && seeds < n ? seeds : n))"
  seq $((base_port + 1)) $((base_port + n)) >"$work/ports"
  : >"$work/none"

  "$bin" store --listen "127.0.0.1:$base_port" --file "$work/master.json" --auth "Bearer scale" \
    2>"$work/logs/store.log" &
  store_pid=$!
  for _ in $(seq 100); do curl -sf -m 1 -o /dev/null "http://127.0.0.1:$base_port/" && break; sleep 0.05; done
  curl -sf -m 1 -o /dev/null "http://127.0.0.1:$base_port/" || { echo "scale_bench: the store did not start" >&2; exit 1; }

  export SHAZBOT_SECRET=scale SHAZBOT_CONTROL_SECRET=scale-control \
    SHAZBOT_MASTER_LIST="http://127.0.0.1:$base_port/" SHAZBOT_MASTER_LIST_UPDATE="http://127.0.0.1:$base_port/" \
    SHAZBOT_MASTER_LIST_UPDATE_AUTH="Bearer scale" SHAZBOT_LOG_LEVEL=debug \
    SHAZBOT_MASTER_ANNOUNCE_MINIMUM=300 SHAZBOT_MASTER_ANNOUNCE_INTERVAL=600
  if [ -n "$profile" ]; then export SHAZBOT_PROFILE=$profile; else export SHAZBOT_GOSSIP_INTERVAL=$interval; fi
  if [ -n "$interval_given" ]; then export SHAZBOT_GOSSIP_INTERVAL=$interval; fi
  for s in "${settings[@]}"; do export "${s?}"; done

  # The nodes start at --start-rate a second, a batch every 50 ms.
  t0=$(now)
  t0_us=${t0/./}
  batch=$(((start_rate + 19) / 20))
  for i in $(seq 1 "$n"); do
    port=$((base_port + i))
    SHAZBOT_BASE_URL="http://127.0.0.1:$port/" SHAZBOT_LISTEN="127.0.0.1:$port" \
      "$bin" serve 2>"$work/logs/$port.log" &
    pids+=($!)
    if ((i % batch == 0)); then
      now_us=${EPOCHREALTIME/./}
      due_us=$((t0_us + i * 1000000 / start_rate))
      ((due_us <= now_us)) || sleep "$(awk -v d=$((due_us - now_us)) 'BEGIN { printf "%.3f", d / 1e6 }')"
    fi
  done
  spread=$(elapsed "$t0" "$(now)")
  echo "  started in $spread s" >&2
  # A node that could not start (its port taken meanwhile by another user's process: this
  # machine is shared) counts as dead from the start: the others are to list it offline.
  : >"$work/ports" && : >"$work/pids" && : >"$work/live.idx" && : >"$work/missing"
  for i in $(seq 1 "$n"); do
    if kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
      echo $((base_port + i)) >>"$work/ports"
      echo "${pids[$((i - 1))]}" >>"$work/pids"
      echo "$i" >>"$work/live.idx"
    else
      echo "http://127.0.0.1:$((base_port + i))/" >>"$work/missing"
      echo "  node $i did not start: $(head -c 200 "$work/logs/$((base_port + i)).log")" >&2
    fi
  done
  live=$(wc -l <"$work/ports")
  missing=$((n - live))
  ((live >= 2)) || { echo "scale_bench: $live nodes running (logs in $work/logs)" >&2; exit 1; }

  read -r converge sweep_s < <(wait_agreed "$work/ports" "$live" "$work/missing" "$max_wait" "$t0")
  echo "  converged: $converge s (sweeps of $sweep_s s)" >&2

  cpu=NA pss=NA pss_max=NA wire=NA plain=NA per_round=NA killed=0 detect=NA
  if [ "$converge" != NA ]; then
    # The steady window, a round after convergence.
    sleep "$interval"
    for p in $(cat "$work/ports"); do echo "$work/logs/$p.log"; done >"$work/logfiles"
    $helper sizes "$work/logfiles" >"$work/offsets"
    ticks0=$($helper ticks "$work/pids")
    w0=$(now)
    sleep "$steady"
    ticks1=$($helper ticks "$work/pids")
    w1=$(now)
    read -r pss pss_max < <($helper pss "$work/pids")
    read -r exchanges wire_total plain_total < <($helper bytes "$work/logfiles" "$work/offsets")
    read -r cpu wire plain per_round < <(awk -v t="$((ticks1 - ticks0))" -v hz="$hz" -v n="$live" -v i="$interval" \
      -v a="$w0" -v b="$w1" -v w="$wire_total" -v p="$plain_total" -v x="$exchanges" 'BEGIN {
        rounds = n * (b - a) / i
        printf "%.3f %.0f %.0f %.2f\n", t / hz * 1000 / rounds, w / rounds, p / rounds, x / rounds }')
    echo "  steady $(elapsed "$w0" "$w1") s: CPU $cpu ms/node/round, PSS $pss KB (largest $pss_max), $wire B/node/round on the wire ($plain plain)" >&2

    # 1 % killed.
    killed=$((n / 100 > 0 ? n / 100 : 1))
    shuf -n "$killed" "$work/live.idx" >"$work/killed.idx"
    cp "$work/missing" "$work/dead"
    for i in $(cat "$work/killed.idx"); do echo "http://127.0.0.1:$((base_port + i))/" >>"$work/dead"; done
    # Killed and reaped with the shell's messages ("Killed") out of the table's way.
    {
      for i in $(cat "$work/killed.idx"); do kill -KILL "${pids[$((i - 1))]}"; done
      t1=$(now)
      for i in $(cat "$work/killed.idx"); do wait "${pids[$((i - 1))]}" || true; done
    } 2>/dev/null
    awk -v b="$base_port" 'NR == FNR { dead[$1 + b] = 1; next } !($1 in dead)' "$work/killed.idx" "$work/ports" >"$work/alive"
    # ($live - $killed: every node still running)
    read -r detect _ < <(wait_agreed "$work/alive" $((live - killed)) "$work/dead" "$max_wait" "$t1")
    echo "  $killed killed: agreed in $detect s" >&2
  fi
  echo "real,$n,$csv_label,$spread,$converge,$(after_start "$converge" "$spread"),$killed,$detect,$cpu,$pss,$pss_max,$wire,$plain,$per_round,$sweep_s,,,,$missing" >>"$csv"
  stop_all
  # Logs are large at debug level and needed no more.
  rm -rf "$work/logs" "$work/sweep"
done

# The simulator: the same settings and start pace (the spread of N nodes is N over the rate).
if [ -n "$sim_from" ]; then
  grep '^sim,' "$sim_from" >>"$csv" || true
fi
if [ -n "$sim_sizes" ]; then
  # The start pace the real runs had (their largest; past a few hundred nodes the machine
  # starts fewer than --start-rate a second): each size run for real gets its own spread,
  # the others that pace; without real runs, --start-rate.
  pace=$(grep '^real,' "$csv" | sort -t, -k2,2n | tail -1 | awk -F, '$4 > 0 { printf "%.3f", $2 / $4 }' || true)
  pace=${pace:-$start_rate}
  for n in $sim_sizes; do
    spread=$(grep "^real,$n," "$csv" | head -1 | cut -d, -f4 || true)
    [ -n "$spread" ] || spread=$(awk -v n="$n" -v r="$pace" 'BEGIN { printf "%.3f", n / r }')
    listed=()
    [ -z "$seeds" ] || listed=(--seeds "$((seeds < n ? seeds : n))")
    # A detection is a random draw (which node tries a dead peer first, and when): the median
    # of several seeds, with their range; past 1,000 nodes one run (minutes of a core each).
    runs=$((n <= 1000 ? sim_seeds : 1))
    echo "== simulator, $n nodes, $runs run(s)" >&2
    : >"$work_sim"
    for seed in $(seq 1 "$runs"); do
      "$bin" simulate --nodes "$n" --interval "$interval" --scenario converge,kill --start-spread "$spread" \
        --max-wait "$max_wait" --seed "$seed" --json "${listed[@]}" "${sim_set[@]}" >"$out/sim-$n-$seed.json"
      read -r converge detect _ < <($helper sim "$out/sim-$n-$seed.json")
      plain=$(grep -o '"bytesPerNodeRound":[0-9]*' "$out/sim-$n-$seed.json" | tail -1 | cut -d: -f2)
      echo "$converge $detect $plain" >>"$work_sim"
    done
    # Medians (and the detections' range) of the runs that reached their goal.
    read -r converge detect detect_min detect_max plain < <($helper runs "$work_sim")
    killed=$((n / 100 > 0 ? n / 100 : 1))
    echo "sim,$n,$csv_label,$spread,$converge,$(after_start "$converge" "$spread"),$killed,$detect,,,,,$plain,,,$detect_min,$detect_max,$runs" >>"$csv"
  done
fi

# The table.
{
  printf '%-5s %6s %9s %10s %8s %7s %9s %12s %9s %7s %10s %10s\n' kind nodes "spread s" "converge s" "after s" killed \
    "detect s" "(range)" "CPU ms/rd" "PSS MB" "wire B/rd" "plain B/rd"
  tail -n +2 "$csv" | awk -F, '{
    pss = $10 == "" || $10 == "NA" ? $10 : sprintf("%.1f", $10 / 1024)
    range = $16 == "" ? "" : sprintf("%s-%s", $16, $17)
    printf "%-5s %6d %9s %10s %8s %7s %9s %12s %9s %7s %10s %10s\n", $1, $2, $4, $5, $6, $7, $8, range, $9, pss, $12, $13 }'
} | tee "$out/scale.txt"
{
  echo "($label, master list naming ${seeds:-every} node$([ -z "$seeds" ] || echo s), started at most $start_rate a second (the"
  echo " simulator: each real run's spread, the largest one's pace beyond); converge: from the first"
  echo " start, after: from the last; CPU, PSS and bytes per node and round over ${steady} s after convergence;"
  echo " wire: gossip bodies as sent (compressed), plain: as JSON; the simulator's bytes are plain JSON"
  echo " of its kill phase)"
  awk -F, 'NR > 1 && $19 > 0 { printf " %d: %d node(s) did not start (their ports taken meanwhile); counted as dead from the start\n", $2, $19 }' "$csv"
} | tee -a "$out/scale.txt"

# The plot: seconds against nodes, real points and the simulator's lines.
grep '^real,' "$csv" | awk -F, '{ print $2, $6, $8 }' >"$out/real.dat"
grep '^sim,' "$csv" | awk -F, '{ print $2, $6, $8, ($16 == "" ? $8 : $16), ($17 == "" ? $8 : $17) }' >"$out/sim.dat"
gnuplot <<EOF
set terminal pngcairo size 900,620 font "sans,11"
set output "$out/scale.png"
set title "clustershazbot on 127.0.0.1, $label: real processes and the simulator"
set xlabel "nodes"
set ylabel "seconds"
set logscale x
set grid
set key below Left reverse
set autoscale xfix
set offsets graph 0.06, graph 0.06, graph 0.12, 0
set yrange [0:*]
set datafile missing "NA"
plot "$out/sim.dat" using 1:3:4:5 with yerrorlines lw 2 dt 2 pt 4 lc rgb "#d62728" title "detection of 1 % killed (kill -9), simulator (median, range of seeds)", \
     "$out/real.dat" using 1:3 with points pt 5 ps 1.8 lc rgb "#d62728" title "detection of 1 % killed (kill -9), real", \
     "$out/sim.dat" using 1:2 with linespoints lw 2 dt 2 pt 6 lc rgb "#1f77b4" title "convergence after the last start, simulator", \
     "$out/real.dat" using 1:2 with points pt 7 ps 1.8 lc rgb "#1f77b4" title "convergence after the last start, real"
EOF
echo "wrote $csv, $out/scale.txt and $out/scale.png" >&2
