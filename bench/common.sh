# Helpers the benchmark scripts share; sourced (`. bench/common.sh`) from
# the repository's root.

# wrk prints latencies as 812.00us, 1.23ms or 1.05s: in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms/, "", v); printf "%.2f", v } else { sub(/s/, "", v); printf "%.2f", v * 1000 } }'; }

# a / b with two decimals (0 when b is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# The median of the numbers given.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# A process's peak resident memory (VmHWM), in MB.
peak_rss() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# A commit's release binary, built from `git archive` in its own folder
# (once: kept in BASELINE_BUILD_DIR, /tmp/crm-baseline by default).
baseline_binary() {
    local rev dir
    rev=$(git rev-parse --short "$1")
    dir=${BASELINE_BUILD_DIR:-/tmp/crm-baseline}/$rev
    if [ ! -x "$dir/target/release/crm" ]; then
        echo "building the baseline $rev in $dir" >&2
        mkdir -p "$dir"
        git archive "$rev" | tar -x -C "$dir"
        (cd "$dir" && cargo build --release --quiet)
    fi
    echo "$dir/target/release/crm"
}
