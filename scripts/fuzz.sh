#!/usr/bin/env bash
# `make fuzz`: libFuzzer (swiftc -sanitize=fuzzer, with AddressSanitizer) on the parsers of
# untrusted input: the CSV, JSON and kis_devlp.yaml account file readers, the KIS answer
# decoder and the WebSocket registration answer reader. Each target runs for FUZZ_SECONDS (default 600) with a 2 GiB memory cap and a
# 10 s per-input timeout, so a crash, a hang or unbounded memory each fail it. New inputs
# go to .build-fuzz/corpus/TARGET; what adds coverage is merged into Tests/Fuzz/corpus/TARGET
# (committed, and replayed by `make test` in FuzzCorpusTests).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-"csv json kis_yaml kis_response kis_ws_answer"}
scratch=.build-fuzz
san=(-sanitize=fuzzer,address)

# AccountFile and its YAML parser, instrumented: the Swift code and libyaml's C code.
swift build --scratch-path "$scratch" --target AccountFile -Xswiftc -sanitize=fuzzer,address \
    -Xcc -fsanitize=fuzzer-no-link,address >/dev/null
bin=$(swift build --scratch-path "$scratch" --show-bin-path)
objects=$(find "$bin/AccountFile.build" "$bin/Yams.build" "$bin/CYaml.build" -name '*.o' | sort)

build() {
    local name=$1 out="$scratch/fuzz-$1"
    case $name in
        kis_response)
            # Compiled as one module with KISAPI's pure files: no network stack to instrument.
            swiftc "${san[@]}" -parse-as-library -module-name KISAPIFuzz -o "$out" \
                Sources/KISAPI/KISResponse.swift Sources/KISAPI/KISError.swift Sources/KISAPI/KISShapes.swift \
                Sources/KISAPI/KISCredential.swift Sources/KISAPI/KISFacts.swift Tests/Fuzz/Targets/kis_response.swift ;;
        kis_ws_answer)
            swiftc "${san[@]}" -parse-as-library -module-name KISAPIFuzz -o "$out" \
                Sources/KISAPI/KISWebSocketAnswer.swift Sources/KISAPI/KISShapes.swift Tests/Fuzz/Targets/kis_ws_answer.swift ;;
        *)
            # shellcheck disable=SC2086
            swiftc "${san[@]}" -parse-as-library -I "$bin/Modules" -I "$scratch/checkouts/Yams/Sources/CYaml/include" \
                -o "$out" Tests/Fuzz/Targets/$name.swift $objects ;;
    esac
}

run() {
    local name=$1 work="$scratch/corpus/$1" kept="Tests/Fuzz/corpus/$1"
    mkdir -p "$work" "$kept"
    echo "fuzz $name: ${seconds}s"
    "$scratch/fuzz-$name" "$work" "$kept" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$scratch/crash-$name-" >"$scratch/fuzz-$name.log" 2>&1 \
        || { echo "fuzz $name FAILED: see $scratch/fuzz-$name.log"; tail -30 "$scratch/fuzz-$name.log"; return 1; }
    # Keep only what adds coverage: merge the new inputs into the committed corpus.
    "$scratch/fuzz-$name" -merge=1 "$kept" "$work" >>"$scratch/fuzz-$name.log" 2>&1
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/fuzz-$name.log" | sed "s/^/  $name /"
}

for t in $targets; do build "$t" 2> >(grep -v "Cannot export local symbol" >&2); done
status=0
pids=()
for t in $targets; do
    run "$t" & pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
