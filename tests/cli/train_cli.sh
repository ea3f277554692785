#!/usr/bin/env bash
# train_cli.sh — tpdiff-train as a user runs it: bad configs are refused with one line naming the
# file and key, exit code 2 and nothing written; a good run trains (loss falls) and is
# deterministic.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-train}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME CONDITION-RESULT(0=ok) DETAIL
  if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi
}

# refuse CASE EXPECTED-SUBSTRINGS... -- ARGS : expects exit 2, exactly one stderr line containing every
# substring, and no output folder.
refuse() {
  local name=$1; shift
  local needles=()
  while [ "$1" != "--" ]; do needles+=("$1"); shift; done
  shift
  local out="$tmp/out-$RANDOM"
  "$BIN" "$@" --train.out="$out" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$? lines ok=0 why=""
  lines=$(wc -l <"$tmp/stderr")
  [ "$rc" -eq 2 ] || { ok=1; why="exit $rc, expected 2"; }
  [ "$lines" -eq 1 ] || { ok=1; why="$why; $lines stderr lines: $(head -c 300 "$tmp/stderr")"; }
  for n in "${needles[@]}"; do grep -qF -- "$n" "$tmp/stderr" || { ok=1; why="$why; message lacks '$n': $(cat "$tmp/stderr")"; }; done
  [ ! -e "$out" ] || { ok=1; why="$why; $out was created"; }
  check "refuses $name" $ok "$why"
}

yaml() { # yaml NAME TEXT: writes a config file from tiny.yaml with one line replaced
  local f="$tmp/$1.yaml"
  printf '%s\n' "$2" >"$f"
  echo "$f"
}

"$BIN" --help >/dev/null 2>&1; check "--help exits 0" $? "non-zero"
"$BIN" >/dev/null 2>&1; [ $? -eq 2 ]; check "no arguments exits 2" $? "wrong exit code"
"$BIN" --help-config >"$tmp/help.txt"; grep -q "pyramid.stages" "$tmp/help.txt"; check "--help-config documents every key (pyramid.stages)" $? "missing"

refuse "a missing config" "$tmp/nope.yaml" -- "$tmp/nope.yaml"
dir_cfg="$tmp/adir"; mkdir -p "$dir_cfg"
refuse "a folder given as config" "$dir_cfg" -- "$dir_cfg"
unk=$(sed 's/^  dim: 64/  dimm: 64/' configs/tiny.yaml > "$tmp/unknown.yaml"; echo "$tmp/unknown.yaml")
refuse "an unknown key" "$unk" "model.dimm" -- "$unk"
typ=$(sed 's/^  depth: 2/  depth: two/' configs/tiny.yaml > "$tmp/type.yaml"; echo "$tmp/type.yaml")
refuse "a wrong type" "$typ" "model.depth" -- "$typ"
frm=$(sed -e 's/^  frames: 8/  frames: 6/' -e 's/^  stages: 1/  stages: 3/' configs/tiny.yaml > "$tmp/frames.yaml"; echo "$tmp/frames.yaml")
refuse "frames not divisible by 2^(K-1)" "$frm" "data.frames" -- "$frm"
refuse "height not divisible by patch" "command line" "data.height" -- configs/tiny.yaml --data.height=15
refuse "width not divisible by patch" "command line" "data.width" -- configs/tiny.yaml --data.width=17
refuse "dim not divisible by 4" "command line" "model.dim" -- configs/tiny.yaml --model.dim=66 --model.heads=2
refuse "dim not divisible by heads" "command line" "model.dim" -- configs/tiny.yaml --model.dim=64 --model.heads=3
refuse "pyramid.stages out of range" "command line" "pyramid.stages" -- configs/tiny.yaml --pyramid.stages=5
refuse "cuts not strictly decreasing" "command line" "pyramid.cuts" -- configs/tiny.yaml --pyramid.stages=3 --pyramid.cuts=[0.3,0.6]
refuse "cuts outside (0, 1)" "command line" "pyramid.cuts" -- configs/tiny.yaml --pyramid.stages=2 --pyramid.cuts=[1.5]
refuse "a sampler step count of 0" "command line" "sample.steps" -- configs/tiny.yaml --sample.steps=0
refuse "guidance on an unconditional model" "command line" "sample.cfg" -- configs/tiny.yaml --sample.cfg=3
refuse "an unknown override" "command line" "model.nope" -- configs/tiny.yaml --model.nope=1
refuse "an override with a bad value" "command line" "train.lr" -- configs/tiny.yaml --train.lr=fast

# a good run
"$BIN" configs/tiny.yaml --train.steps=30 --train.out="$tmp/run1" >"$tmp/run1.log" 2>"$tmp/run1.err"
rc=$?
check "tiny run exits 0" $rc "exit $rc: $(tail -3 "$tmp/run1.err")"
steps=$(awk '$1 ~ /^[0-9]+$/' "$tmp/run1.log" | wc -l)
[ "$steps" -eq 30 ]; check "tiny run logs 30 steps" $? "$steps step lines"
first=$(awk '$1 ~ /^[0-9]+$/ {print $2; exit}' "$tmp/run1.log")
last5=$(awk '$1 ~ /^[0-9]+$/ {l[NR]=$2} END {n=0; s=0; for (i in l) {n++}; c=0; for (i=NR; i>0 && c<5; i--) if (i in l) {s+=l[i]; c++}; print s/c}' "$tmp/run1.log")
awk -v a="$first" -v b="$last5" 'BEGIN {exit !(b < 0.8 * a)}'
check "tiny run: mean loss of the last 5 steps < 0.8 x the first ($last5 vs $first)" $? "loss did not fall"
awk '$1 ~ /^[0-9]+$/ && ($2 != $2+0 || $3 != $3+0) {bad=1} END {exit bad}' "$tmp/run1.log"
check "tiny run: every loss and grad norm is a number" $? "non-numeric"
[ -s "$tmp/run1/config.yaml" ]; check "resolved config written to train.out/config.yaml" $? "missing"
"$BIN" "$tmp/run1/config.yaml" --train.steps=30 --train.out="$tmp/run2" >"$tmp/run2.log" 2>/dev/null
awk '$1 ~ /^[0-9]+$/ {print $1, $2, $3}' "$tmp/run1.log" >"$tmp/a"
awk '$1 ~ /^[0-9]+$/ {print $1, $2, $3}' "$tmp/run2.log" >"$tmp/b"
cmp -s "$tmp/a" "$tmp/b"; check "rerun from the stored config gives identical losses and grad norms" $? "runs differ"
# train.recompute trades time for memory and nothing else: the same 10 steps (K=3, two microbatches
# of different stages per step) give a byte-identical log.tsv from a smaller activation arena
for mode in none cheap blocks; do
  "$BIN" configs/tiny.yaml --train.steps=10 --pyramid.stages=3 --train.microbatches=2 --train.recompute=$mode \
    --train.out="$tmp/rc-$mode" >"$tmp/rc-$mode.log" 2>&1
  check "recompute $mode: tiny K=3 run exits 0" $? "$(tail -2 "$tmp/rc-$mode.log")"
done
rows=$(wc -l <"$tmp/rc-none/log.tsv")
[ "$rows" -eq 11 ]; check "recompute none: log.tsv has a header and 10 steps" $? "$rows lines"
for mode in cheap blocks; do
  cmp -s "$tmp/rc-none/log.tsv" "$tmp/rc-$mode/log.tsv"
  check "recompute $mode: log.tsv byte-identical to recompute none's" $? "$(diff "$tmp/rc-none/log.tsv" "$tmp/rc-$mode/log.tsv" | head -3)"
done
arena() { sed -n 's/.*activation arena \([0-9.]*\) MiB.*/\1/p' "$tmp/rc-$1.log"; }
awk -v n="$(arena none)" -v c="$(arena cheap)" -v b="$(arena blocks)" 'BEGIN {exit !(n > c && c > b && b > 0)}'
check "recompute: arena none > cheap > blocks ($(arena none) > $(arena cheap) > $(arena blocks) MiB)" $? "not decreasing"
grep -q "recompute blocks" "$tmp/rc-blocks.log"; check "recompute: the memory line names the mode" $? "$(grep '# memory' "$tmp/rc-blocks.log")"
refuse "an unknown recompute mode" "command line" "train.recompute" -- configs/tiny.yaml --train.recompute=all
# a plan larger than the device's memory (host RAM on the CPU) is refused before anything large is
# allocated and before anything is written, with one line that names the key and, short of blocks,
# the recompute modes
for mode in none blocks; do
  "$BIN" configs/tiny.yaml --train.clips_per_microbatch=200000 --data.synth_clips=400000 --train.recompute=$mode \
    --train.out="$tmp/huge-$mode" >/dev/null 2>"$tmp/huge-$mode.err"
  rc=$?
  lines=$(wc -l <"$tmp/huge-$mode.err")
  ok=0
  [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "train.clips_per_microbatch: the run needs .* GiB" "$tmp/huge-$mode.err" || ok=1
  [ ! -e "$tmp/huge-$mode" ] || ok=1 # not even train.out/config.yaml
  if [ "$mode" = none ]; then grep -q "train.recompute: cheap" "$tmp/huge-$mode.err" || ok=1
  else ! grep -q "train.recompute" "$tmp/huge-$mode.err" || ok=1; fi
  check "recompute $mode: a plan past the memory is refused in one line (exit $rc), nothing written" $ok \
    "$(head -c 400 "$tmp/huge-$mode.err"; ls "$tmp/huge-$mode" 2>/dev/null)"
done
# the sampling rounds' videos are in the plan too: a training run that fits but whose sample.count
# does not is refused at the start, naming sample.count, and not at its first sampling round
"$BIN" configs/tiny.yaml --sample.count=200000 --train.out="$tmp/huge-sample" >/dev/null 2>"$tmp/huge-sample.err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/huge-sample.err")" -eq 1 ] &&
  grep -q "sample.count: the run needs .* GiB .* sampling .* GiB for 200000 videos.*; lower sample.count$" \
    "$tmp/huge-sample.err" && [ ! -e "$tmp/huge-sample" ]
check "sample.count past the memory is refused in one line (exit $rc), nothing written" $? \
  "$(head -c 400 "$tmp/huge-sample.err"; ls "$tmp/huge-sample" 2>/dev/null)"
grep -q "sampling [0-9.]* MiB; total" "$tmp/rc-blocks.log"
check "the memory line plans the sampling rounds" $? "$(grep '# memory' "$tmp/rc-blocks.log")"
"$BIN" configs/tiny.yaml --train.steps=3 --model.classes=4 --train.out="$tmp/run3" >"$tmp/run3.log" 2>&1
check "class-conditional tiny run exits 0" $? "$(tail -2 "$tmp/run3.log")"
