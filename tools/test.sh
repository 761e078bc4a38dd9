#!/usr/bin/env bash
# The test command: installs what is missing, builds (release, then ASan+UBSan), runs every test,
# builds an application against the installed library, and prints "N passed, N failed" last.
# Exits non-zero on any failure.
set -uo pipefail
case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) echo "usage: $0 [--help]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

./tools/setup.sh --torch --text || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

export CXX="${CXX:-clang++}"
jobs="$(nproc)"
passed=0
failed=0
log_dir="$root/build-logs"
mkdir -p "$log_dir"

# Adds doctest's test-case counts from a log to the totals (a run that printed none counts as one failure).
count() {
  local log="$1" line
  line="$(grep -E '^\[doctest\] test cases:' "$log" | tail -n 1)"
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line")))
  failed=$((failed + $(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")))
}

step() {  # step NAME COMMAND...: runs a build step, counting a failure when it fails
  local name="$1"
  shift
  echo "== $name"
  if ! "$@" >"$log_dir/$name.log" 2>&1; then
    tail -n 40 "$log_dir/$name.log"
    echo "$name: FAILED (log: build-logs/$name.log)"
    failed=$((failed + 1))
    return 1
  fi
}

run_suite() {  # run_suite NAME COMMAND...: runs a doctest program and adds its counts
  local name="$1"
  shift
  echo "== $name"
  "$@" --no-intro=true >"$log_dir/$name.log" 2>&1
  local rc=$?
  count "$log_dir/$name.log"
  if [ $rc -ne 0 ]; then
    grep -E "ERROR|FAILED|error:|Sanitizer" "$log_dir/$name.log" | head -n 40
    echo "$name: FAILED (exit $rc; log: build-logs/$name.log)"
    [ "$(grep -cE '^\[doctest\] test cases:.*\| *[1-9][0-9]* failed' "$log_dir/$name.log")" -eq 0 ] && failed=$((failed + 1))
  fi
  tail -n 2 "$log_dir/$name.log" | head -n 1
}

# 1. Release build and tests.
if [ ! -f build/build.ninja ]; then
  step setup-release meson setup build --buildtype=release
fi
if step build-release ninja -C build -j "$jobs"; then
  run_suite tests-release build/tests/quench_tests
  # Data parallelism: alone, then 2 and 3 ranks over loopback (a timeout, so a lost rank cannot hang CI).
  run_suite tests-dist-1 build/tests/quench_dist_tests
  if grep -q "have_mpi.*true\|QUENCH_HAVE_MPI=1" build/build.ninja 2>/dev/null; then
    for np in 2 3; do
      OMPI_MCA_btl_vader_single_copy_mechanism=none run_suite "tests-dist-$np" timeout 600 \
        mpirun --allow-run-as-root --oversubscribe -np "$np" build/tests/quench_dist_tests --no-colors=true
    done
    # A rank that never joins a collective: the others give up after their timeout and stop the job.
    echo "== tests-dist-timeout"
    start_s=$SECONDS
    OMPI_MCA_btl_vader_single_copy_mechanism=none timeout 100 mpirun --allow-run-as-root --oversubscribe -np 2 \
      build/tests/quench_dist_tests --no-colors=true --no-skip=true -tc='*never joins*' >"$log_dir/tests-dist-timeout.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ $((SECONDS - start_s)) -lt 60 ] &&
       grep -q "rank 0 of 2: dist::all_reduce_sum of 1 values waited .* stopping the job" "$log_dir/tests-dist-timeout.log"; then
      passed=$((passed + 1))
      echo "tests-dist-timeout: the job stopped after $((SECONDS - start_s)) s with rank 0's message"
    else
      failed=$((failed + 1))
      echo "tests-dist-timeout: FAILED (exit $rc after $((SECONDS - start_s)) s; log: build-logs/tests-dist-timeout.log)"
    fi
  else
    echo "tests-dist: FAILED (the build found no MPI; tools/setup.sh installs libopenmpi-dev)"
    failed=$((failed + 1))
  fi
  # The README's library example, run as written.
  if step run-qat-kd bash -c "cd '$(mktemp -d)' && '$root/build/tools/qat_kd' student.int8.safetensors"; then
    passed=$((passed + 1))
    tail -n 1 "$log_dir/run-qat-kd.log"
  fi
  # BERT checkpoints between PyTorch and quench, both ways (Hugging Face folders).
  if step bert-interop /usr/bin/python3 tests/golden/bert_interop.py build/tools/quench; then
    passed=$((passed + 1))
    tail -n 2 "$log_dir/bert-interop.log"
  fi
  # Every command shown in README.md and docs/ against the CLI's --help.
  echo "== docs-check"
  python3 tools/check_docs.py >"$log_dir/docs-check.log" 2>&1
  docs_line="$(tail -n 1 "$log_dir/docs-check.log")"
  if [[ "$docs_line" =~ ^docs:\ ([0-9]+)\ commands\ checked,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1] - BASH_REMATCH[2]))
    failed=$((failed + BASH_REMATCH[2]))
    [ "${BASH_REMATCH[1]}" -gt 0 ] || failed=$((failed + 1))  # a check that found nothing proves nothing
    [ "${BASH_REMATCH[2]}" -eq 0 ] || cat "$log_dir/docs-check.log"
  else
    cat "$log_dir/docs-check.log"
    failed=$((failed + 1))
  fi
  echo "$docs_line"
fi

# 2. AddressSanitizer + UndefinedBehaviorSanitizer build of the library and tests.
if [ ! -f build-asan/build.ninja ]; then
  step setup-asan meson setup build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbench=disabled -Dtools=disabled
fi
if step build-asan ninja -C build-asan -j "$jobs" tests/quench_tests; then
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    run_suite tests-asan build-asan/tests/quench_tests
fi

# 3. An application outside the tree, built against the installed library through pkg-config.
prefix="$(mktemp -d)"
app_dir="$(mktemp -d)"
if step install meson install -C build --destdir "$prefix" --no-rebuild; then
  pc_dir="$(dirname "$(find "$prefix" -name quench.pc | head -n 1)")"
  usr="$(dirname "$(dirname "$pc_dir")")"
  cp tools/example/embed.cpp "$app_dir/"
  if step build-example bash -c "cd '$app_dir' && \
      PKG_CONFIG_PATH='$pc_dir' PKG_CONFIG_SYSROOT_DIR='$prefix' \
      $CXX -std=c++20 -O2 embed.cpp -o embed \$(PKG_CONFIG_PATH='$pc_dir' PKG_CONFIG_SYSROOT_DIR='$prefix' pkg-config --cflags --libs --static quench)"; then
    if step run-example "$app_dir/embed"; then
      passed=$((passed + 1))
      tail -n 1 "$log_dir/run-example.log"
    fi
  fi
fi
rm -rf "$prefix" "$app_dir"

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
