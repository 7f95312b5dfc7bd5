#!/usr/bin/env bash
# Lance on S3-compatible object storage, against a real server: SeaweedFS on 127.0.0.1
# (integration/s3.sh, built from the Go module proxy by setup), pylance as the independent reader.
#
# 1. The server refuses a conditional put over an existing object (412). Lance's commits on s3://
#    rely on that (If-None-Match), so the rest of the test means something only if it holds.
# 2. Two `lexembed run` file pipelines append to one missing dataset at once: both try to create it.
#    One takes its options from the spec's storage_options (and no AWS_* environment), the other only
#    from the AWS_* environment. Meanwhile pylance polls the dataset. Every row lands once, every read
#    sees a committed version whole, and the vectors equal a local run's.
# 2b. Four `--shard i/4` runs of one file backfill (a Kubernetes Indexed Job's pods) append to one new
#    dataset at once: every row once, the vectors equal the local run's.
# 3. Two Kafka consumer-group replicas stream one topic into a dataset on S3: every message lands
#    once (offsets live in the Lance commits there).
#    Then `compact`, `index` and `cleanup` of every old version: a restart recovers the offsets and a
#    file `--resume` re-embeds nothing.
# 4. `lexembed search` and `lexembed sql` read the S3 dataset with the environment's credentials.
# 5. The README's object-storage block, run as written.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
say() { printf '[s3 test] %s\n' "$*"; }
fail() { printf '[s3 test] FAILED: %s\n' "$*"; exit 1; }

"$ROOT/integration/s3.sh" start >/dev/null
eval "$("$ROOT/integration/s3.sh" env)"
check="$ROOT/integration/python/s3_check.py"
tiny="$ROOT/operators/encoder/tests/fixtures/tiny-xlmr"
run_id="$(date +%s)-$$"
prefix="s3://lexembed/test-$run_id"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${S3_TEST_KEEP:-}" ] && trap - EXIT && echo "work dir kept: $work"

say "1. the server honours If-None-Match (Lance's commit protocol needs it)"
obj="$AWS_ENDPOINT/lexembed/test-$run_id/probe"
code="$("$ROOT/integration/s3.sh" curl -o /dev/null -w '%{http_code}' -X PUT --data first "$obj")"
[ "$code" = 200 ] || fail "a plain PUT answered $code"
code="$("$ROOT/integration/s3.sh" curl -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' --data second "$obj")"
[ "$code" = 412 ] || fail "a conditional PUT over an existing object answered $code, not 412"
[ "$("$ROOT/integration/s3.sh" curl "$obj")" = first ] || fail "the conditional PUT replaced the object"
code="$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data x "$obj-anonymous")"
[ "$code" = 403 ] || fail "an unsigned PUT answered $code, not 403"

say "2. two file pipelines append to one new dataset at once"
articles="$LEXEMBED_HOME/data/boe_articles.jsonl"
head -n 1500 "$articles" > "$work/a.jsonl"
sed -n '1501,3000p' "$articles" > "$work/b.jsonl"
docs="$prefix/docs.lance"
cat > "$work/a.yaml" <<YAML
name: s3-writer-a
source: {kind: file, path: a.jsonl, metadata_fields: [law]}
encoder: {model: $tiny}
sink:
  uri: $docs
  mode: append
  storage_options:
    aws_endpoint: $AWS_ENDPOINT
    aws_region: $AWS_REGION
    aws_access_key_id: $AWS_ACCESS_KEY_ID
    aws_secret_access_key: \${WRITER_A_SECRET}
    allow_http: "true"
YAML
cat > "$work/b.yaml" <<YAML
name: s3-writer-b
source: {kind: file, path: b.jsonl, metadata_fields: [law]}
encoder: {model: $tiny}
sink: {uri: $docs, mode: append}
YAML
python "$check" watch "$docs" "$work/seen.json" & reader=$!; pids+=("$reader")
env -u AWS_ENDPOINT -u AWS_REGION -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ALLOW_HTTP \
  -u AWS_VIRTUAL_HOSTED_STYLE_REQUEST WRITER_A_SECRET="$AWS_SECRET_ACCESS_KEY" \
  LEXEMBED_LOG=lexembed_lance=info lexembed run "$work/a.yaml" > "$work/a.out" 2>&1 & wa=$!; pids+=("$wa")
LEXEMBED_LOG=lexembed_lance=info lexembed run "$work/b.yaml" > "$work/b.out" 2>&1 & wb=$!; pids+=("$wb")
status=0
wait $wa || { say "writer a failed:"; cat "$work/a.out"; status=1; }
wait $wb || { say "writer b failed:"; cat "$work/b.out"; status=1; }
sleep 1; kill -TERM $reader; wait $reader || true
[ $status = 0 ] || fail "a writer failed"
python "$check" check "$docs" "$work/seen.json" "$work/a.jsonl" "$work/b.jsonl" || fail "rows on S3"
# Both found the dataset missing (each embeds for seconds after looking), so both tried to create it:
# the loser's files must have gone in as an append, not over the winner's rows.
grep -h "another writer created the dataset first" "$work/a.out" "$work/b.out" >/dev/null \
  || fail "the writers did not race to create the dataset (one finished before the other looked)"
# The same documents written to a local directory by the same model: the S3 copy holds equal vectors.
cat > "$work/local.yaml" <<YAML
name: local-reference
source: {kind: file, path: a.jsonl}
encoder: {model: $tiny}
sink: {uri: local.lance}
YAML
lexembed run "$work/local.yaml" > "$work/local.out" 2>&1 || { cat "$work/local.out"; fail "local reference run"; }
python "$check" same-vectors "$docs" "$work/local.lance" emb_64 || fail "vectors on S3"

say "2b. four shards of one backfill append to one new dataset at once"
mkdir -p "$work/parts"
split -l 250 -d --additional-suffix=.jsonl "$work/a.jsonl" "$work/parts/a-"
split -l 250 -d --additional-suffix=.jsonl "$work/b.jsonl" "$work/parts/b-"
sharded="$prefix/sharded.lance"
cat > "$work/sharded.yaml" <<YAML
name: s3-sharded
source: {kind: file, path: "parts/*.jsonl", metadata_fields: [law]}
encoder: {model: $tiny}
sink: {uri: $sharded, mode: append}
YAML
python "$check" watch "$sharded" "$work/seen-sharded.json" & reader=$!; pids+=("$reader")
shard_pids=()
for i in 0 1 2 3; do
  lexembed run "$work/sharded.yaml" --shard "$i/4" > "$work/shard-$i.out" 2>&1 & shard_pids+=($!); pids+=($!)
done
status=0
for i in 0 1 2 3; do
  wait "${shard_pids[$i]}" || { say "shard $i/4 failed:"; cat "$work/shard-$i.out"; status=1; }
done
sleep 1; kill -TERM $reader; wait $reader || true
[ $status = 0 ] || fail "a shard failed"
python "$check" check "$sharded" "$work/seen-sharded.json" "$work/a.jsonl" "$work/b.jsonl" || fail "sharded rows on S3"
python "$check" same-vectors "$sharded" "$work/local.lance" emb_64 || fail "sharded vectors on S3"

say "3. two Kafka replicas stream one topic into a dataset on S3"
brokers="${LEXEMBED_KAFKA_BROKERS:-$("$ROOT/integration/kafka.sh" start | tail -1)}"
topic="s3-test-$run_id"
head -n 2000 "$articles" > "$work/stream.jsonl"
lexembed produce /dev/null --brokers "$brokers" --topic "$topic" --partitions 4 > /dev/null 2>&1 || fail "topic"
stream="$prefix/stream.lance"
cat > "$work/kafka.yaml" <<YAML
name: s3-stream
source:
  kind: kafka
  kafka: {brokers: "$brokers", topics: [$topic], group_id: $topic, linger_ms: 200}
  batch_rows: 64
encoder: {model: $tiny}
sink: {uri: $stream, mode: append}
YAML
python "$check" watch "$stream" "$work/seen-stream.json" & reader=$!; pids+=("$reader")
http1=$((20000 + RANDOM % 5000)); http2=$((http1 + 1))
lexembed run "$work/kafka.yaml" --exit-when-idle 15 --http-addr "127.0.0.1:$http1" > "$work/k1.out" 2>&1 & k1=$!; pids+=("$k1")
lexembed run "$work/kafka.yaml" --exit-when-idle 15 --http-addr "127.0.0.1:$http2" > "$work/k2.out" 2>&1 & k2=$!; pids+=("$k2")
# Produce once both replicas hold partitions, so both consume and commit to S3 at the same time.
both_ready() { curl -sf "127.0.0.1:$http1/readyz" >/dev/null && curl -sf "127.0.0.1:$http2/readyz" >/dev/null; }
for _ in $(seq 1 60); do both_ready && break; sleep 0.5; done
both_ready || fail "the replicas did not both get partitions within 30 s"
lexembed produce "$work/stream.jsonl" --brokers "$brokers" --topic "$topic" --key-field id \
  > "$work/produce.out" 2>&1 || { cat "$work/produce.out"; fail "produce"; }
status=0
wait $k1 || { say "replica 1 failed:"; tail -30 "$work/k1.out"; status=1; }
wait $k2 || { say "replica 2 failed:"; tail -30 "$work/k2.out"; status=1; }
sleep 1; kill -TERM $reader; wait $reader || true
[ $status = 0 ] || fail "a replica failed"
for k in k1 k2; do
  n="$(grep -Eo 'rows written +[0-9]+' "$work/$k.out" | grep -Eo '[0-9]+$' || echo 0)"
  say "replica $k wrote $n rows"
  [ "$n" -gt 0 ] || fail "replica $k wrote nothing: the test did not exercise two writers"
done
python "$check" check "$stream" "$work/seen-stream.json" "$work/stream.jsonl" || fail "stream rows on S3"

say "3b. compact, index and cleanup of every old version on S3; a restart recovers the offsets, a resume re-embeds nothing"
lexembed compact "$stream" > "$work/maint.out" 2>&1 || { cat "$work/maint.out"; fail "compact on S3"; }
lexembed index "$stream" --column emb_64 --type ivf_pq >> "$work/maint.out" 2>&1 || { cat "$work/maint.out"; fail "index on S3"; }
for ds in "$stream" "$docs"; do
  cleaned="$(lexembed cleanup "$ds" --json 2>>"$work/maint.out")" || { cat "$work/maint.out"; fail "cleanup of $ds"; }
  removed="$(echo "$cleaned" | python -c 'import json,sys; print(json.load(sys.stdin)["versions_removed"])')"
  say "cleanup of $ds: $cleaned"
  [ "$removed" -gt 0 ] || fail "cleanup of $ds removed no version: $cleaned"
done
sed -n '2001,2300p' "$articles" > "$work/stream2.jsonl"
lexembed produce "$work/stream2.jsonl" --brokers "$brokers" --topic "$topic" --key-field id \
  > "$work/produce2.out" 2>&1 || { cat "$work/produce2.out"; fail "produce after cleanup"; }
python "$check" watch "$stream" "$work/seen-restart.json" & reader=$!; pids+=("$reader")
LEXEMBED_LOG=info lexembed run "$work/kafka.yaml" --exit-when-idle 8 --http-addr "" > "$work/k3.out" 2>&1 \
  || { tail -30 "$work/k3.out"; fail "the restart after cleanup"; }
sleep 1; kill -TERM $reader; wait $reader || true
read_n="$(grep -Eo 'commits_read=[0-9]+' "$work/k3.out" | head -1 | grep -Eo '[0-9]+$' || echo none)"
say "restart after cleanup: recovery read $read_n commits"
[ "$read_n" != none ] && [ "$read_n" -le 2 ] || fail "recovery after cleanup read $read_n commits"
python "$check" check "$stream" "$work/seen-restart.json" "$work/stream.jsonl" "$work/stream2.jsonl" \
  || fail "stream rows on S3 after cleanup and restart"
LEXEMBED_LOG=info lexembed run "$work/b.yaml" --resume > "$work/resume.out" 2>&1 || { cat "$work/resume.out"; fail "resume after cleanup"; }
grep -q "nothing to do" "$work/resume.out" || { cat "$work/resume.out"; fail "resume after cleanup re-embedded files"; }
"$ROOT/integration/kafka.sh" delete-topic "$topic" >/dev/null 2>&1 || true

say "4. search and SQL read the S3 dataset"
first_text="$(head -n 1 "$work/a.jsonl" | python -c 'import json,sys; print(json.loads(sys.stdin.read())["text"])')"
first_id="$(head -n 1 "$work/a.jsonl" | python -c 'import json,sys; print(json.loads(sys.stdin.read())["id"])')"
top="$(lexembed search "$docs" --model "$tiny" --column emb_64 --query "$first_text" -k 1 --mode exact --json \
  | python -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')"
[ "$top" = "$first_id" ] || fail "search on S3: the nearest row to article $first_id's text is $top"
n="$(lexembed sql --model "$tiny" --table "docs=$docs" --format csv "SELECT count(*) AS n FROM docs" | tail -1)"
[ "$n" = 3000 ] || fail "sql on S3 counted $n rows, not 3000"

say "5. the README's object-storage block, as written"
block="$(awk '/^### Lance on object storage/{f=1} f&&/^```sh/{b=1;next} b&&/^```/{exit} b{print}' "$ROOT/README.md")"
[ -n "$block" ] || fail "no code block under '### Lance on object storage' in README.md"
out="$(cd "$ROOT" && bash -euo pipefail -c "$block")" || fail "the README block failed"
echo "$out" | grep -q "boe-" || fail "the README block printed no search results: $out"
say "ok"
