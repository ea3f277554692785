# ckpt_common.sh — sourced by the tests of tests/ckpt: the PASS/FAIL line and waiting for a file.

# check NAME STATUS DETAIL: "PASS NAME" when STATUS is 0, else "FAIL NAME: DETAIL"
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }

# wait_for FILE: waits (up to 120 s) until FILE exists; 0 when it does
wait_for() {
  for _ in $(seq 1200); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}
