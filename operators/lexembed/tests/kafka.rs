//! The Kafka operator against a real broker (integration/kafka.sh starts Apache Kafka 4.x in KRaft
//! mode on 127.0.0.1; `.ci/run` starts it). Every test checks the dataset ends with each produced id
//! exactly once: two replicas on 100,000 messages, kill -9 at random moments and between the Lance
//! and the Kafka commit, replicas joining and leaving, a broker restart, poison records to the
//! dead-letter topic, SIGTERM; with upserts, each live id exactly once with its latest text and no
//! deleted id, through crashes. The broker is shared, so the tests take turns.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;
use common::*;
use lexembed_encoder::Prompt;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;

static BROKER: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    BROKER.lock().unwrap_or_else(|e| e.into_inner())
}

fn brokers() -> String {
    let b = std::env::var("LEXEMBED_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let addr = b.split(',').next().unwrap().to_string();
    assert!(
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))
            .is_ok(),
        "no Kafka broker at {b}: start one with integration/kafka.sh start"
    );
    b
}

fn unique(name: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{n}")
}

/// `n` good documents as JSONL lines, ids d0…d{n-1}.
fn docs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"d{i}\",\"text\":\"Artículo {i}. El plazo para resolver el procedimiento {} será de {} días hábiles.\"}}",
                i % 977,
                i % 90
            )
            .into_bytes()
        })
        .collect()
}

fn produce(dir: &Path, topic: &str, partitions: i32, lines: &[Vec<u8>]) {
    let file = dir.join(format!("{topic}.jsonl"));
    let mut f = std::fs::File::create(&file).unwrap();
    for l in lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
    drop(f);
    let partitions = partitions.to_string();
    run_produce(
        &file,
        topic,
        &["--key-field", "id", "--partitions", &partitions],
    );
}

/// `lexembed produce FILE --topic TOPIC EXTRA…` against the test broker; it must succeed.
fn run_produce(file: &Path, topic: &str, extra: &[&str]) {
    let out = bin()
        .args(["produce", file.to_str().unwrap(), "--topic", topic])
        .args(extra)
        .args(["--brokers", &brokers()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "produce {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Setup {
    dir: tempfile::TempDir,
    topic: String,
    spec: PathBuf,
    dataset: String,
}

/// A topic and a pipeline spec consuming it into a fresh dataset.
fn setup(name: &str, extra_kafka: &str, batch_rows: usize) -> Setup {
    setup_with(name, extra_kafka, batch_rows, 30_000)
}

/// `setup` with the group's `max.poll.interval.ms` (how long a stalled replica keeps its partitions).
fn setup_with(name: &str, extra_kafka: &str, batch_rows: usize, max_poll_ms: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique(name);
    let dataset = dir.path().join("out.lance").display().to_string();
    let spec = dir.path().join("k.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: {name}\nsource:\n  kind: kafka\n  batch_rows: {batch_rows}\n  max_text_bytes: 2000\n  kafka:\n    brokers: {}\n    topics: [{topic}]\n    group_id: {topic}-g\n    linger_ms: 300\n{extra_kafka}    properties:\n      session.timeout.ms: \"6000\"\n      heartbeat.interval.ms: \"500\"\n      max.poll.interval.ms: \"{max_poll_ms}\"\n      statistics.interval.ms: \"1000\"\nencoder:\n  model: {}\nsink:\n  uri: {dataset}\n  mode: append\n",
            brokers(),
            tiny().display()
        ),
    )
    .unwrap();
    Setup {
        dir,
        topic,
        spec,
        dataset,
    }
}

impl Setup {
    fn start(&self, tag: &str, idle_s: f64, env: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("{tag}.log"))).unwrap();
        let mut cmd = bin();
        cmd.args([
            "run",
            self.spec.to_str().unwrap(),
            "--json",
            "--http-addr",
            "",
        ])
        .args(["--exit-when-idle", &idle_s.to_string()])
        .env("LEXEMBED_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// `wait`, but a replica that does not finish in time has its log's tail printed first.
    fn wait_logged(
        &self,
        child: Child,
        tag: &str,
        secs: u64,
    ) -> (std::process::ExitStatus, String) {
        let dir = self.dir.path().to_path_buf();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait(child, secs)));
        result.unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.join(format!("{tag}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- last lines of {tag}'s log:");
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
            std::panic::resume_unwind(e)
        })
    }

    /// Waits (up to a minute) until replica `tag` holds partitions.
    fn wait_assigned(&self, tag: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log(tag).contains("assigned; resuming") {
            assert!(
                Instant::now() < deadline,
                "{tag} was not assigned: {}",
                self.log(tag)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self, tag: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{tag}.log"))).unwrap_or_default()
    }

    /// Runs replica `tag` until it aborts inside the window between its `after`th Lance commit and
    /// the Kafka offset commit (the test hook), and checks it did abort.
    fn abort_between_commits(&self, tag: &str, after: u64) {
        let after = after.to_string();
        let env = [("LEXEMBED_TEST_CRASH_AFTER_LANCE_COMMITS", after.as_str())];
        let (status, _) = wait(self.start(tag, 30.0, &env), 120);
        assert!(
            !status.success(),
            "{tag} should have aborted: {}",
            self.log(tag)
        );
    }

    /// Runs one replica until idle and returns its summary.
    fn drain(&self, tag: &str) -> serde_json::Value {
        let child = self.start(tag, 4.0, &[]);
        let (status, out) = wait(child, 300);
        assert!(status.success(), "{tag} failed: {}", self.log(tag));
        serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap()
    }
}

/// Waits for a child (killing it after `secs`) and returns its status and stdout.
fn wait(mut child: Child, secs: u64) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (status, out);
        }
        if Instant::now() > deadline {
            dump_threads(child.id());
            child.kill().unwrap();
            panic!("process did not finish in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every thread's stack of a process that hangs (with gdb, where the machine has it): where it waits
/// is what a hang's fix needs, and it is gone once the process is killed.
fn dump_threads(pid: u32) {
    let out = Command::new("timeout")
        .args(["60", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt 40"])
        .output();
    match out {
        Ok(o) => eprintln!(
            "--- threads of the hung process {pid}:\n{}",
            String::from_utf8_lossy(&o.stdout)
        ),
        Err(e) => eprintln!("--- no thread dump of {pid} (gdb: {e})"),
    }
}

fn ids(uri: &str) -> Vec<String> {
    scan_all(uri)
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name("id").unwrap().as_string::<i32>().clone();
            (0..col.len()).map(move |i| col.value(i).to_string())
        })
        .collect()
}

/// Every expected id exactly once, nothing else.
fn assert_exactly_once(uri: &str, n: usize) {
    let got = ids(uri);
    let set: HashSet<&String> = got.iter().collect();
    let missing: Vec<String> = (0..n)
        .map(|i| format!("d{i}"))
        .filter(|id| !set.contains(id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "missing ids, e.g. {missing:?} ({} rows)",
        got.len()
    );
    assert_eq!(
        got.len(),
        set.len(),
        "duplicated ids: {} rows, {} distinct",
        got.len(),
        set.len()
    );
    assert_eq!(got.len(), n, "unexpected ids");
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Rows committed so far (0 when the dataset does not exist yet).
fn count(uri: &str) -> usize {
    scan_all(uri).iter().map(|b| b.num_rows()).sum()
}

fn wait_for_rows(uri: &str, at_least: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while count(uri) < at_least {
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} rows after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_replicas_write_100k_messages_exactly_once_with_the_encoders_vectors() {
    let _turn = turn();
    let n = 100_000;
    let s = setup("two-replicas", "", 2000);
    produce(s.dir.path(), &s.topic, 4, &docs(n));
    let a = s.start("a", 6.0, &[]);
    let b = s.start("b", 6.0, &[]);
    let (sa, oa) = wait(a, 900);
    let (sb, ob) = wait(b, 900);
    assert!(
        sa.success() && sb.success(),
        "{}\n{}",
        s.log("a"),
        s.log("b")
    );
    let (ja, jb): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(oa.trim()).unwrap(),
        serde_json::from_str(ob.trim()).unwrap(),
    );
    // Both replicas did part of the work.
    assert!(
        ja["written"].as_u64().unwrap() > 0 && jb["written"].as_u64().unwrap() > 0,
        "{ja} {jb}"
    );
    assert_exactly_once(&s.dataset, n);

    // The vectors are the encoder's for the same texts (a sample across partitions and batches).
    let encoder = lexembed_encoder::Encoder::open(tiny(), &Default::default()).unwrap();
    let batches = scan_all(&s.dataset);
    let mut checked = 0;
    for b in batches.iter().step_by(7) {
        let text = b.column_by_name("text").unwrap().as_string::<i32>();
        let picked = arrow_array::StringArray::from_iter_values(
            (0..text.len()).step_by(97).map(|i| text.value(i)),
        );
        let dims = encoder.dims().as_slice().to_vec();
        let want = encoder
            .encode_array(&picked, &dims, &Prompt::none())
            .unwrap();
        for (j, d) in dims.iter().enumerate() {
            let col = b
                .column_by_name(&format!("emb_{}", d.0))
                .unwrap()
                .as_fixed_size_list();
            for (k, i) in (0..text.len()).step_by(97).enumerate() {
                let got = col.value(i);
                let got = got.as_primitive::<Float32Type>().values();
                let exp = want[j].value(k);
                let exp = exp.as_primitive::<Float32Type>().values();
                let diff = got
                    .iter()
                    .zip(exp.iter())
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(diff <= 1e-5, "row {i} dim {} differs by {diff}", d.0);
            }
        }
        checked += picked.len();
    }
    assert!(checked > 50, "checked {checked}");
}

/// Twelve crash trials of one replica: SIGKILL at random moments, and aborts between the Lance and the
/// Kafka commit.
#[test]
fn kill_9_at_random_moments_and_between_lance_and_kafka_commits_loses_and_duplicates_nothing() {
    crash_trials("crash", 1, false);
}

/// Twelve more, with two replicas of the group in every trial (each killed at its own moment; in the
/// abort trials one aborts between its commits while the other is killed) and a `lexembed cleanup`
/// of every old version after every other trial, so replicas also recover from a recovery commit.
#[test]
fn kill_9_trials_with_two_replicas_and_cleanups_between_them_keep_exactly_once() {
    crash_trials("crash2", 2, true);
}

/// `rand(m)`: a number below `m`, xorshift seeded from the clock (each run crashes at other moments).
fn clock_seeded_random() -> impl FnMut(u64) -> u64 {
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    }
}

/// Runs twelve crash trials with `replicas` replicas each, then drains the topic: every record exactly
/// once, and never a duplicate after any trial.
fn crash_trials(name: &str, replicas: usize, cleanup: bool) {
    let _turn = turn();
    let n = 30_000;
    // One commit per batch: the abort trials stop between the Nth Lance commit and its Kafka
    // commit, so each trial's share of the topic must make several commits (gathering is crashed in
    // the scale-out test).
    let s = setup(name, "    commit_interval_ms: 0\n", 500);
    // Each trial first adds its share of the messages, so every trial has work to lose whatever the
    // operator's speed (a crash trial needs up to three batches of it).
    let all = docs(n);
    let mut shares = all.chunks(n / 12);
    let mut rand = clock_seeded_random();
    let mut aborted_between = 0;
    for trial in 0..12 {
        produce(s.dir.path(), &s.topic, 4, shares.next().unwrap());
        let tag = |r: usize| format!("trial{trial}-{r}");
        let mut others: Vec<Child> = (1..replicas).map(|r| s.start(&tag(r), 30.0, &[])).collect();
        if trial % 3 == 2 {
            s.abort_between_commits(&tag(0), 1 + rand(3));
            aborted_between += 1;
        } else {
            let mut child = s.start(&tag(0), 30.0, &[]);
            std::thread::sleep(Duration::from_millis(1500 + rand(3000)));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        for other in &mut others {
            std::thread::sleep(Duration::from_millis(rand(1500)));
            other.kill().unwrap();
            other.wait().unwrap();
        }
        let partial = ids(&s.dataset);
        let distinct: HashSet<&String> = partial.iter().collect();
        assert_eq!(
            partial.len(),
            distinct.len(),
            "duplicates after trial {trial}"
        );
        // Every other trial, maintenance in between: the next replicas recover from the cleanup's
        // recovery commit, the versions that recorded the offsets being gone.
        if cleanup && trial % 2 == 1 && !partial.is_empty() {
            let out = bin().args(["cleanup", &s.dataset]).output().unwrap();
            assert!(
                out.status.success(),
                "cleanup after trial {trial}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(aborted_between >= 4);
    let before = count(&s.dataset);
    assert!(
        before < n,
        "the crashes should leave work to do ({before} rows)"
    );
    let summary = s.drain("final");
    assert!(summary["written"].as_u64().unwrap() > 0);
    assert_exactly_once(&s.dataset, n);
}

#[test]
fn a_replica_joining_and_one_leaving_mid_stream_keep_exactly_once() {
    let _turn = turn();
    let n = 40_000;
    let s = setup("rebalance", "", 500);
    produce(s.dir.path(), &s.topic, 4, &docs(n));
    let a = s.start("a", 8.0, &[]);
    let b = s.start("b", 8.0, &[]);
    wait_for_rows(&s.dataset, 5_000, 300);
    let c = s.start("c", 8.0, &[]); // joins: a rebalance mid-stream
    wait_for_rows(&s.dataset, 15_000, 300);
    sigterm(&a); // leaves: another rebalance
    let (sa, _) = wait(a, 120);
    assert!(sa.success(), "{}", s.log("a"));
    for (child, tag) in [(b, "b"), (c, "c")] {
        let (st, _) = wait(child, 600);
        assert!(st.success(), "{}", s.log(tag));
    }
    assert!(
        s.log("b").contains("partitions revoked"),
        "no rebalance seen by b"
    );
    assert_exactly_once(&s.dataset, n);
}

/// A replica stalled between its fence and its Lance commit (a long GC or VM pause) past
/// `max.poll.interval.ms` is dropped from the group; the other replica takes its partitions over from
/// the offsets in Lance and drains the topic. When the stalled one wakes up, its batch was fenced
/// against a version that is no longer the latest: its commit must not land (the old code appended it
/// on top, duplicating what the successor had committed).
#[test]
fn a_replica_stalled_past_the_poll_interval_lands_nothing_its_successor_committed() {
    let _turn = turn();
    let n = 6_000;
    // One commit per batch (no gathering): the stall must fall on a commit that has rows left to take.
    let s = setup_with("stalled", "    commit_interval_ms: 0\n", 500, 7_000);
    produce(s.dir.path(), &s.topic, 2, &docs(n));
    let a = s.start(
        "a",
        6.0,
        &[("LEXEMBED_TEST_PAUSE_BEFORE_LANCE_COMMIT", "2:45")],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.log("a").contains("stalling before the commit") {
        assert!(Instant::now() < deadline, "a never stalled: {}", s.log("a"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = s.start("b", 6.0, &[]);
    let (sb, _) = s.wait_logged(b, "b", 300);
    assert!(sb.success(), "{}", s.log("b"));
    assert_eq!(
        count(&s.dataset),
        n,
        "b drained the topic while a was stalled"
    );
    let (sa, out) = s.wait_logged(a, "a", 300);
    assert!(sa.success(), "{}", s.log("a"));
    assert_exactly_once(&s.dataset, n);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(
        summary["dropped_not_owned"].as_u64().unwrap() >= 500,
        "a's stale batch was not dropped: {summary}"
    );
}

/// Maintenance between runs, as operators of a lakehouse do it: the operator commits, then `lexembed
/// compact`, `index` and `cleanup` (every old version removed, with the commits that recorded the
/// offsets). A restart recovers each partition's offset from the cleanup's recovery commit, reading
/// a bounded number of commits (logged), and the records produced meanwhile land exactly once.
#[test]
fn offsets_survive_compact_index_and_a_cleanup_of_every_old_version() {
    let _turn = turn();
    let s = setup("maintenance", "", 200);
    let all = docs(3_000);
    produce(s.dir.path(), &s.topic, 3, &all[..2_000]);
    s.drain("a");
    assert_eq!(count(&s.dataset), 2_000);
    let maintenance: [&[&str]; 3] = [
        &["compact", &s.dataset],
        &[
            "index", &s.dataset, "--column", "emb_64", "--type", "ivf_pq",
        ],
        &["cleanup", &s.dataset, "--json"],
    ];
    for args in maintenance {
        let out = bin().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let versions = lance_versions(&s.dataset);
    assert_eq!(versions, 1, "cleanup left {versions} versions");
    produce(s.dir.path(), &s.topic, 3, &all[2_000..]);
    s.drain("b");
    assert_exactly_once(&s.dataset, 3_000);
    let log = s.log("b");
    let line = log
        .lines()
        .find(|l| l.contains("recovered the offsets recorded in Lance"))
        .unwrap_or_else(|| panic!("no recovery line: {log}"));
    let read: u64 = line
        .split("commits_read=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no commits_read in {line}"));
    assert!(read <= 2, "recovery read {read} commits: {line}");
}

/// How many versions a dataset keeps.
fn lance_versions(uri: &str) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ds = lexembed_lance::DatasetLocation::new(uri)
            .open()
            .await
            .unwrap();
        ds.versions().await.unwrap().len()
    })
}

#[test]
fn broker_restart_mid_stream_reconnects_and_finishes() {
    let _turn = turn();
    let n = 30_000;
    let s = setup("broker-restart", "", 500);
    produce(s.dir.path(), &s.topic, 4, &docs(n));
    let a = s.start("a", 20.0, &[]);
    wait_for_rows(&s.dataset, 2_000, 300);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../integration/kafka.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("restart")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, _) = s.wait_logged(a, "a", 600);
    assert!(st.success(), "{}", s.log("a"));
    // The broker's absence is not idleness: the run reads the topic to its end before it stops.
    assert_exactly_once(&s.dataset, n);
}

fn dead_letters(topic: &str, expect: usize) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let mut h = BTreeMap::new();
            if let Some(headers) = m.headers() {
                for i in 0..headers.count() {
                    let hd = headers.get(i);
                    h.insert(
                        hd.key.to_string(),
                        String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push((m.payload().unwrap_or_default().to_vec(), h));
        }
    }
    out
}

#[test]
fn poison_records_go_to_the_dead_letter_topic_with_headers_and_good_ones_to_lance() {
    let _turn = turn();
    let n = 4_000;
    let dlq = unique("poison-dlq");
    let s = setup("poison", &format!("    dead_letter_topic: {dlq}\n"), 500);
    let kinds: [&[u8]; 8] = [
        b"this is not json",
        b"[\"an\", \"array\"]",
        b"{\"id\":\"p\"}",
        b"{\"id\":\"p\",\"text\":42}",
        b"{\"text\":\"no id\"}",
        b"{\"id\":\"p\",\"text\":\"caf\xe9 latin-1\"}",
        b"{\"id\":\"p\",\"text\":null}",
        b"",
    ];
    let big = format!("{{\"id\":\"big\",\"text\":\"{}\"}}", "x".repeat(3000)).into_bytes();
    let mut lines = vec![];
    let mut poison = 0;
    for (i, good) in docs(n).into_iter().enumerate() {
        lines.push(good);
        if i % 20 == 0 {
            // 5%: every kind, in turn (the empty kind is the oversized one).
            let k = kinds[(i / 20) % kinds.len()];
            lines.push(if k.is_empty() {
                big.clone()
            } else {
                k.to_vec()
            });
            poison += 1;
        }
    }
    produce(s.dir.path(), &dlq, 1, &[]);
    produce(s.dir.path(), &s.topic, 4, &lines);
    let summary = s.drain("a");
    assert_eq!(
        summary["dead_lettered"].as_u64().unwrap() as usize,
        poison,
        "{summary}"
    );
    assert_exactly_once(&s.dataset, n);
    let letters = dead_letters(&dlq, poison);
    assert_eq!(letters.len(), poison);
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (payload, h) in &letters {
        assert_eq!(h["lexembed.source.topic"], s.topic);
        assert!(h["lexembed.source.partition"].parse::<i32>().unwrap() < 4);
        assert!(h["lexembed.source.offset"].parse::<i64>().unwrap() >= 0);
        assert!(!h["lexembed.error"].is_empty());
        assert!(
            kinds.contains(&payload.as_slice()) || payload == &big,
            "{:?}",
            String::from_utf8_lossy(payload)
        );
        *by_kind.entry(h["lexembed.error.kind"].clone()).or_default() += 1;
    }
    for k in [
        "not_json",
        "not_object",
        "missing_text",
        "text_not_string",
        "missing_id",
        "invalid_utf8",
        "too_large",
    ] {
        assert!(by_kind.contains_key(k), "no {k} in {by_kind:?}");
    }
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    common::http_get(&format!("127.0.0.1:{port}"), path)
}

#[test]
fn sigterm_commits_the_batch_in_hand_and_exits_0_promptly_with_metrics_served() {
    let _turn = turn();
    let n = 40_000;
    let s = setup("sigterm", "", 1000);
    produce(s.dir.path(), &s.topic, 4, &docs(n));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(s.dir.path().join("a.log")).unwrap();
    let child = bin()
        .args([
            "run",
            s.spec.to_str().unwrap(),
            "--json",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_rows(&s.dataset, 3_000, 300);
    // Parsed by the official Prometheus client's parser, every series labelled by pipeline and source.
    let (code, body) = http_get(port, "/metrics");
    assert_eq!(code, 200);
    let samples = prometheus_samples(body.split_once("\r\n\r\n").unwrap().1);
    for name in [
        "lexembed_messages_consumed_total",
        "lexembed_rows_written_total",
        "lexembed_batch_seconds_bucket",
        "lexembed_end_to_end_lag_seconds",
        "lexembed_kafka_committed_offset",
        "lexembed_ready",
        "lexembed_kafka_broker_connected",
    ] {
        assert!(
            samples.iter().any(|x| x["name"] == name
                && x["labels"]["pipeline"] == "sigterm"
                && x["labels"]["source"] == "kafka"),
            "{name} missing: {samples:#?}"
        );
    }
    assert_eq!(http_get(port, "/healthz").0, 200);
    assert_eq!(http_get(port, "/readyz").0, 200);
    let t = Instant::now();
    sigterm(&child);
    let (status, out) = wait(child, 60);
    let took = t.elapsed();
    assert!(status.success(), "exit {status:?}: {}", s.log("a"));
    // Linger (0.3 s) plus one batch of 1,000 short texts and its commit, with room for a busy CI box.
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let written = summary["written"].as_u64().unwrap() as usize;
    assert_eq!(
        count(&s.dataset),
        written,
        "every consumed row committed before exit"
    );
    assert!(written < n, "it should have stopped mid-stream ({written})");
    s.drain("rest");
    assert_exactly_once(&s.dataset, n);
}

/// `start: latest` loses nothing: a partition whose only batch was dead letters has no offset in
/// Lance, so a restart used to resolve `latest` again and skip what was produced meanwhile. It now
/// resumes at the group's committed offset (the dead-letter batch committed there).
#[test]
fn start_latest_resumes_after_a_batch_of_only_dead_letters() {
    let _turn = turn();
    let dlq = unique("latest-dlq");
    let s = setup(
        "latest",
        &format!("    start: latest\n    dead_letter_topic: {dlq}\n"),
        64,
    );
    produce(s.dir.path(), &dlq, 1, &[]);
    produce(s.dir.path(), &s.topic, 1, &[]);
    let first = s.start("a", 4.0, &[]);
    s.wait_assigned("a");
    let poison: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("not json {i}").into_bytes())
        .collect();
    produce(s.dir.path(), &s.topic, 1, &poison);
    let (status, out) = s.wait_logged(first, "a", 120);
    assert!(status.success(), "a failed: {}", s.log("a"));
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["dead_lettered"], 3, "{summary}");
    assert_eq!(count(&s.dataset), 0, "nothing good was produced yet");

    produce(s.dir.path(), &s.topic, 1, &docs(5));
    let summary = s.drain("b");
    assert_eq!(summary["written"], 5, "{summary}: {}", s.log("b"));
    assert_exactly_once(&s.dataset, 5);
}

/// `start: latest`, killed (-9) during a partition's first batch: the next replica must not resolve
/// `latest` again (that skips every record the dead one had read but not committed). The start
/// resolved at the first assignment is committed to the group before any record is read.
#[test]
fn start_latest_killed_during_the_first_batch_loses_nothing() {
    let _turn = turn();
    let s = setup("latest-kill", "    start: latest\n", 100_000);
    // The first batch never closes on its own: only the kill ends it.
    let spec = std::fs::read_to_string(&s.spec).unwrap();
    std::fs::write(&s.spec, spec.replace("linger_ms: 300", "linger_ms: 600000")).unwrap();
    produce(s.dir.path(), &s.topic, 1, &[]);
    let mut first = s.start("a", 600.0, &[]);
    s.wait_assigned("a");
    produce(s.dir.path(), &s.topic, 1, &docs(20));
    std::thread::sleep(Duration::from_secs(3)); // a reads them into its open batch
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(count(&s.dataset), 0, "a committed nothing");
    let summary = s.drain("b");
    assert_eq!(summary["written"], 20, "{summary}: {}", s.log("b"));
    assert_exactly_once(&s.dataset, 20);
}

/// More replicas than partitions: a replica the group gives no partition is a healthy spare and
/// reports ready, so a rollout of N+1 replicas over N partitions completes (the chart's readiness
/// probe). The partition stays with the first replica (cooperative-sticky), so the second has never
/// held one; both leave cleanly on SIGTERM and every message lands once.
#[test]
fn a_replica_without_partitions_is_ready() {
    let _turn = turn();
    let n = 300;
    let s = setup("spare", "", 100);
    let sticky = std::fs::read_to_string(&s.spec).unwrap().replace(
        "    properties:\n",
        "    properties:\n      partition.assignment.strategy: cooperative-sticky\n",
    );
    std::fs::write(&s.spec, sticky).unwrap();
    produce(s.dir.path(), &s.topic, 1, &docs(n));
    let serve = |tag: &str| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(s.dir.path().join(format!("{tag}.log"))).unwrap();
        let child = bin()
            .args(["run", s.spec.to_str().unwrap(), "--json"])
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .env("LEXEMBED_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        (child, port)
    };
    let ready_within = |port: u16, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || http_get(port, "/readyz").0 != 200
        {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    };
    let (a, port_a) = serve("a");
    assert!(ready_within(port_a, 60), "a never ready: {}", s.log("a"));
    wait_for_rows(&s.dataset, n, 120);
    // Per-partition lag (librdkafka's statistics, every second here) reaches 0 once every message
    // is in Lance, and the committed offset is the partition's end; read by the official parser.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = http_get(port_a, "/metrics").1;
        let samples = prometheus_samples(body.split_once("\r\n\r\n").unwrap().1);
        let value = |name: &str| {
            samples
                .iter()
                .find(|x| {
                    x["name"] == name
                        && x["labels"]["topic"] == s.topic.as_str()
                        && x["labels"]["partition"] == "0"
                        && x["labels"]["pipeline"] == "spare"
                })
                .and_then(|x| x["value"].as_f64())
        };
        let (lag, offset) = (
            value("lexembed_kafka_partition_lag"),
            value("lexembed_kafka_committed_offset"),
        );
        if (lag, offset) == (Some(0.0), Some(n as f64)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag {lag:?}, committed offset {offset:?} (want 0 and {n}): {samples:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (b, port_b) = serve("b");
    let b_ready = ready_within(port_b, 60);
    assert!(
        !s.log("b").contains("assigned; resuming"),
        "the partition moved to b: {}",
        s.log("b")
    );
    assert!(b_ready, "the spare never turned ready: {}", s.log("b"));
    assert_eq!(http_get(port_a, "/readyz").0, 200);
    for (child, tag) in [(a, "a"), (b, "b")] {
        sigterm(&child);
        let (status, _) = s.wait_logged(child, tag, 60);
        assert!(status.success(), "{tag}: {}", s.log(tag));
    }
    assert_eq!(count(&s.dataset), n);
}

/// `lexembed produce --tombstones`: one tombstone (key, null value) per id, on the partition its
/// records went to (same key).
fn produce_tombstones(dir: &Path, topic: &str, ids: &[String]) {
    let file = dir.join(format!("{topic}-tombstones.txt"));
    std::fs::write(&file, ids.join("\n") + "\n").unwrap();
    run_produce(&file, topic, &["--tombstones"]);
}

/// Upserts through Kafka, crashing all along: 2,000 articles, then four trials that each amend the
/// same 100 articles again (a new version each) and delete a quarter of 50 others by tombstone, one id
/// deleted and later brought back; in each trial the replica is killed (-9) at a random moment or
/// aborts between its Lance and its Kafka commit. After every trial no id is there twice; after the
/// final drain every live id is there once with its latest text and the encoder's vectors for it, no
/// deleted id is, and pylance agrees.
#[test]
fn upserts_and_tombstones_land_exactly_once_through_kill_9_trials() {
    let _turn = turn();
    let n = 2000;
    // One commit per batch, as in `crash_trials`: its abort trials count commits.
    let s = setup("upserts", "    commit_interval_ms: 0\n", 25);
    let spec = std::fs::read_to_string(&s.spec).unwrap();
    std::fs::write(&s.spec, spec.replace("mode: append", "mode: upsert")).unwrap();
    let originals = docs(n);
    produce(s.dir.path(), &s.topic, 4, &originals);
    assert_eq!(s.drain("seed")["written"], n, "the originals");
    let mut expected: BTreeMap<String, String> = originals
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            (
                v["id"].as_str().unwrap().into(),
                v["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    let amended: Vec<usize> = (0..n).step_by(20).collect();
    let deleted: Vec<usize> = (0..n).filter(|i| i % 40 == 5).collect();
    let mut rand = clock_seeded_random();
    for trial in 0..4 {
        let mut lines = Vec::new();
        for &i in &amended {
            let text = format!(
                "Artículo {i}, en su versión {trial}: el plazo será de {} meses.",
                trial + 1
            );
            lines.push(
                serde_json::json!({"id": format!("d{i}"), "text": text})
                    .to_string()
                    .into_bytes(),
            );
            expected.insert(format!("d{i}"), text);
        }
        if trial == 2 {
            let text = "Artículo 7, restablecido.".to_string();
            lines.push(
                serde_json::json!({"id": "d7", "text": text})
                    .to_string()
                    .into_bytes(),
            );
            expected.insert("d7".into(), text);
        }
        produce(s.dir.path(), &s.topic, 4, &lines);
        let mut gone: Vec<String> = deleted
            .iter()
            .filter(|&&i| (i / 40) % 4 == trial)
            .map(|i| format!("d{i}"))
            .collect();
        if trial == 0 {
            gone.push("d7".into());
        }
        produce_tombstones(s.dir.path(), &s.topic, &gone);
        for id in &gone {
            expected.remove(id);
        }
        let tag = format!("trial{trial}");
        if trial % 2 == 0 {
            s.abort_between_commits(&tag, 1 + rand(3));
        } else {
            // Killed while it works: once it holds the partitions, within the next batches.
            let mut child = s.start(&tag, 30.0, &[]);
            s.wait_assigned(&tag);
            std::thread::sleep(Duration::from_millis(rand(600)));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let (rows, total) = id_texts(&s.dataset);
        assert_eq!(rows.len(), total, "an id twice after trial {trial}");
    }
    // A killed replica stays in the group until its session times out (6 s): one started before would
    // be given part of the partitions and go idle before the rebalance hands it the rest.
    std::thread::sleep(Duration::from_secs(7));
    let summary = s.drain("final");
    let (rows, total) = id_texts(&s.dataset);
    assert_eq!(rows.len(), total, "an id twice after the drain");
    let stale: Vec<&String> = expected
        .keys()
        .filter(|id| rows.get(*id) != expected.get(*id))
        .take(5)
        .collect();
    let shown: Vec<(Option<&String>, Option<&String>)> = stale
        .iter()
        .map(|id| (rows.get(*id), expected.get(*id)))
        .collect();
    assert!(
        stale.is_empty(),
        "ids missing or with an old text, e.g. {stale:?} (got, want: {shown:?}); {summary}"
    );
    let extra: Vec<&String> = rows
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .take(5)
        .collect();
    assert!(extra.is_empty(), "deleted ids still there, e.g. {extra:?}");
    assert_eq!(rows.len(), n - deleted.len());

    // The vectors are the encoder's for the latest texts.
    let encoder = lexembed_encoder::Encoder::open(tiny(), &Default::default()).unwrap();
    for b in scan_all(&s.dataset) {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let texts = b.column_by_name("text").unwrap().as_string::<i32>();
        let col = b.column_by_name("emb_64").unwrap().as_fixed_size_list();
        for r in (0..b.num_rows())
            .filter(|&r| amended.iter().any(|i| ids.value(r) == format!("d{i}")))
            .take(5)
        {
            let got = col.value(r);
            let got = got.as_primitive::<Float32Type>().values();
            assert_tiny_64(&encoder, got, texts.value(r), ids.value(r));
        }
    }
    let checks = serde_json::json!({
        "texts": expected,
        "deleted": deleted.iter().map(|i| format!("d{i}")).collect::<Vec<_>>(),
    });
    pylance_upsert_check(&s.dataset, s.dir.path(), &checks);
}

/// A whole number from the environment, or `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Produces docs d0…d{n-1} keyed by id at `rate` messages a second from a producer of the test's own
/// (rdkafka, not `lexembed produce`); returns when all are delivered.
fn produce_at_rate(topic: &str, n: usize, rate: f64) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let lines = docs(n);
    let started = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let key = format!("d{i}");
        let mut record = BaseRecord::to(topic).key(&key).payload(line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Rows in the dataset now, from its metadata (0 when it does not exist yet).
fn rows_now(uri: &str) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        match lexembed_lance::DatasetLocation::new(uri)
            .open_if_exists()
            .await
            .unwrap()
        {
            Some(ds) => ds.count_rows(None).await.unwrap(),
            None => 0,
        }
    })
}

/// Scale-out on one dataset (issue 31): replicas of one group on a 16-partition topic fed at a fixed
/// rate by the test's own producer, two of them killed with SIGKILL mid-run and restarted. Every
/// record lands exactly once, and the group keeps up: the rows land at ≥ 0.9 × the offered rate
/// (from the first message produced to the last row landed). Sized by LEXEMBED_SCALE_OUT_REPLICAS
/// (default 4), _RATE (messages/s for the group, default 400) and _SECONDS (default 40); BENCHMARKS.md
/// records the 16-replica run.
#[test]
fn replicas_fed_at_a_fixed_rate_with_two_killed_and_restarted_land_every_record_once() {
    let _turn = turn();
    let replicas = env_or("LEXEMBED_SCALE_OUT_REPLICAS", 4).max(3) as usize;
    let rate = env_or("LEXEMBED_SCALE_OUT_RATE", 400) as f64;
    let seconds = env_or("LEXEMBED_SCALE_OUT_SECONDS", 40) as f64;
    let n = (rate * seconds) as usize;
    let s = setup("scale-out", "", 200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(lexembed_kafka::create_topic(&brokers(), &s.topic, 16, 1))
        .unwrap();
    let mut running: Vec<(String, Child)> = (0..replicas)
        .map(|r| {
            let tag = format!("r{r}");
            let child = s.start(&tag, 15.0, &[]);
            (tag, child)
        })
        .collect();
    for (tag, _) in &running {
        s.wait_assigned(tag);
    }
    let topic = s.topic.clone();
    let started = Instant::now();
    let producer = std::thread::spawn(move || produce_at_rate(&topic, n, rate));
    // Two replicas killed mid-run, each restarted a second later (as Kubernetes would).
    for (victim, at) in [(1usize, seconds / 3.0), (2, seconds / 2.0)] {
        let due = started + Duration::from_secs_f64(at);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let (tag, child) = &mut running[victim];
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let again = format!("{tag}-restarted");
        *child = s.start(&again, 15.0, &[]);
        *tag = again;
    }
    producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while rows_now(&s.dataset) < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} rows 180 s after the producer ended",
            rows_now(&s.dataset)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let landed_rate = n as f64 / started.elapsed().as_secs_f64();
    for (tag, child) in running {
        let (status, _) = s.wait_logged(child, &tag, 300);
        assert!(status.success(), "{tag}: {}", s.log(&tag));
    }
    assert_exactly_once(&s.dataset, n);
    eprintln!(
        "{replicas} replicas, 16 partitions: offered {rate:.0} rows/s, landed {landed_rate:.0} rows/s ({:.3}×), {} Lance versions",
        landed_rate / rate,
        lance_versions(&s.dataset)
    );
    assert!(
        landed_rate >= 0.9 * rate,
        "landed {landed_rate:.0} rows/s of {rate:.0} offered"
    );
}
