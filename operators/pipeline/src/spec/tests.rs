//! The spec's parsing and validation, through YAML as users write it.

use super::*;

const GOOD: &str = "name: t\nsource:\n  kind: file\n  path: docs.jsonl\nsink:\n  uri: out.lance\n";

fn err(text: &str) -> String {
    parse(text, Path::new("p.yaml")).unwrap_err().to_string()
}

#[test]
fn minimal_spec_gets_defaults() {
    let s = parse(GOOD, Path::new("p.yaml")).unwrap();
    assert_eq!(s.source.id_field, "id");
    assert_eq!(s.source.on_bad_record, OnBadRecord::Fail);
    assert_eq!(s.sink.mode, SinkModeSpec::Create);
}

/// `encoder.prompt` is a name, `none`, or `{text: …}`; anything else names the field and says
/// what it takes.
#[test]
fn prompt_forms_read_and_bad_ones_say_what_is_expected() {
    let with = |p: &str| format!("{GOOD}encoder:\n  prompt: {p}\n");
    let read = |p: &str| parse(&with(p), Path::new("p.yaml")).unwrap().encoder.prompt;
    use lexembed_encoder::PromptChoice;
    let choice = |p: &str| read(p).map(PromptChoice::from);
    assert_eq!(choice("none"), Some(PromptChoice::None));
    assert_eq!(choice("query"), Some(PromptChoice::Named("query".into())));
    assert_eq!(
        choice("{text: 'passage: '}"),
        Some(PromptChoice::Literal("passage: ".into()))
    );
    let e = err(&with("{txt: 'a'}"));
    assert!(
        e.contains("encoder.prompt") && e.contains("unknown field `txt`"),
        "{e}"
    );
    let e = err(&with("[a]"));
    assert!(e.contains("encoder.prompt") && e.contains("{text:"), "{e}");
}

#[test]
fn syntax_errors_and_unknown_keys_name_line_and_column() {
    let e = err("name: t\nsource: [\n");
    assert!(e.contains("p.yaml:") && e.contains("line"), "{e}");
    let e = err(&GOOD.replace("  path: docs.jsonl", "  path: docs.jsonl\n  pth: x"));
    assert!(e.contains("pth") && e.contains("p.yaml:5:"), "{e}");
    let e = err(&GOOD.replace("name: t\n", ""));
    assert!(e.contains("name"), "{e}");
    let e = err(&GOOD.replace("kind: file", "kind: ftp"));
    assert!(e.contains("ftp") && e.contains("p.yaml:3:"), "{e}");
    let e = err(&format!("{GOOD}  mode: sideways\n"));
    assert!(e.contains("sideways"), "{e}");
}

#[test]
fn env_interpolation_with_defaults_and_missing_vars() {
    let raw = "a: ${LEXEMBED_TEST_UNSET_VAR:-fallback} ${HOME}\n";
    let out = interpolate(raw, Path::new("p.yaml")).unwrap();
    assert!(out.starts_with("a: fallback /"), "{out}");
    let e = interpolate("x: 1\nb: ${LEXEMBED_TEST_UNSET_VAR}\n", Path::new("p.yaml")).unwrap_err();
    assert!(
        e.to_string().contains("p.yaml:2:4") && e.to_string().contains("LEXEMBED_TEST_UNSET_VAR"),
        "{e}"
    );
}

/// A value from the environment is a string, whatever it holds: `p@ss #2` is not cut at ` #` (a
/// comment), `*x` is no alias, a newline injects no key (the old text substitution did all three).
#[test]
fn env_values_stay_strings_and_inject_nothing() {
    let spec = |var: &str, value: &str| {
        // SAFETY: each case sets a variable of its own that no other thread reads.
        unsafe { std::env::set_var(var, value) };
        parse(
            &GOOD.replace(
                "  uri: out.lance\n",
                &format!("  uri: out.lance\n  storage_options:\n    secret: ${{{var}}}\n    prefixed: s3://${{{var}}}/x\n"),
            ),
            Path::new("p.yaml"),
        )
    };
    for (var, value) in [
        ("LEXEMBED_TEST_SECRET_HASH", "p@ss #2"),
        ("LEXEMBED_TEST_SECRET_ALIAS", "*x"),
        ("LEXEMBED_TEST_SECRET_TAG", "!!int 5"),
        ("LEXEMBED_TEST_SECRET_NUMBER", "123456"),
    ] {
        let s = spec(var, value).unwrap();
        assert_eq!(s.sink.storage_options["secret"], value);
        assert_eq!(
            s.sink.storage_options["prefixed"],
            format!("s3://{value}/x")
        );
    }
    let s = spec("LEXEMBED_TEST_SECRET_SHOWN", "hunter2-secret").unwrap();
    let shown = format!("{s:?}");
    assert!(
        shown.contains("secret") && !shown.contains("hunter2"),
        "a credential in Debug: {shown}"
    );
    let injected = spec("LEXEMBED_TEST_SECRET_NEWLINE", "x\n  mode: overwrite").unwrap();
    assert_eq!(
        injected.sink.mode,
        SinkModeSpec::Create,
        "a newline injected a key"
    );
    assert_eq!(
        injected.sink.storage_options["secret"],
        "x\n  mode: overwrite"
    );
}

#[test]
fn kafka_sources_need_their_block_and_append() {
    let kafka = "name: k\nsource:\n  kind: kafka\n  kafka:\n    brokers: b:9092\n    topics: [t]\n    group_id: g\nsink:\n  uri: out.lance\n  mode: append\n";
    let s = parse(kafka, Path::new("p.yaml")).unwrap();
    let SourceInput::Kafka(k) = s.source.input else {
        panic!("not a kafka source: {:?}", s.source.input)
    };
    assert_eq!((k.linger_ms, k.start), (500, StartPosition::Earliest));
    assert_eq!(k.max_batch_seconds, 300);
    assert_eq!(
        (
            k.commit_interval_ms,
            k.commit_interval_max_ms,
            k.commit_rows
        ),
        (1000, 30_000, 65_536)
    );
    let e = err(&kafka.replace("group_id: g", "group_id: g\n    commit_rows: 0"));
    assert!(e.contains("source.kafka.commit_rows"), "{e}");
    let e = err(&kafka.replace(
        "group_id: g",
        "group_id: g\n    commit_interval_ms: 5000\n    commit_interval_max_ms: 1000",
    ));
    assert!(e.contains("source.kafka.commit_interval_max_ms"), "{e}");
    // The chart writes the batch time as a ${VAR}: a number in a string is read as the number.
    let timed = kafka.replace(
        "group_id: g",
        "group_id: g\n    max_batch_seconds: \"${LEXEMBED_TEST_UNSET_VAR:-900}\"",
    );
    let SourceInput::Kafka(k) = parse(&timed, Path::new("p.yaml")).unwrap().source.input else {
        panic!("not a kafka source")
    };
    assert_eq!(k.max_batch_seconds, 900);
    let e = err(&kafka.replace("group_id: g", "group_id: g\n    max_batch_seconds: ten"));
    assert!(e.contains("whole number of seconds"), "{e}");
    let e = err(&kafka.replace("  mode: append\n", ""));
    assert!(e.contains("sink.mode"), "{e}");
    let e = err(&kafka.replace("topics: [t]", "topics: []"));
    assert!(e.contains("source.kafka.topics"), "{e}");
    let e = err(&kafka.replace("group_id: g", "group_id: g\n    properties: {group.id: x}"));
    assert!(e.contains("source.kafka.properties.group.id"), "{e}");
    let e = err(&kafka.replace("kind: kafka", "kind: file"));
    assert!(e.contains("source.kafka: only for kind kafka"), "{e}");
    let e = err("name: k\nsource:\n  kind: kafka\nsink:\n  uri: o\n  mode: append\n");
    assert!(e.contains("source.kafka") && e.contains("p.yaml:"), "{e}");
    let e = err(&GOOD.replace("path: docs.jsonl", "path: docs.jsonl\n  sql: {query: x}"));
    assert!(e.contains("source.sql: only for kind sql"), "{e}");
}

/// Provider, precision and index type are typed when parsed; a `${VAR}` holding one is read
/// after substitution, and a bad value there is still refused, naming the value.
#[test]
fn typed_settings_accept_variables_and_refuse_bad_values() {
    let spec = |provider: &str| {
        format!(
            "{GOOD}  indexes: [{{column: emb_64, type: ivf_hnsw_sq}}]\nencoder:\n  provider: {provider}\n  precision: fp16\n"
        )
    };
    let s = parse(&spec("tensorrt"), Path::new("p.yaml")).unwrap();
    assert_eq!(s.encoder.provider, Some(ProviderSpec::Tensorrt));
    assert_eq!(s.encoder.precision, Some(PrecisionSpec::Fp16));
    assert_eq!(s.sink.indexes[0].kind, IndexTypeSpec::IvfHnswSq);
    // SAFETY: variables of this test only.
    unsafe {
        std::env::set_var("LEXEMBED_TEST_PROVIDER_CUDA", "cuda");
        std::env::set_var("LEXEMBED_TEST_PROVIDER_BAD", "rocm");
    }
    let s = parse(&spec("${LEXEMBED_TEST_PROVIDER_CUDA}"), Path::new("p.yaml")).unwrap();
    assert_eq!(s.encoder.provider, Some(ProviderSpec::Cuda));
    let s = parse(
        &spec("${LEXEMBED_TEST_UNSET_VAR:-cpu}"),
        Path::new("p.yaml"),
    )
    .unwrap();
    assert_eq!(s.encoder.provider, Some(ProviderSpec::Cpu));
    let e = err(&spec("${LEXEMBED_TEST_PROVIDER_BAD}"));
    assert!(e.contains("rocm") && e.contains("after replacing"), "{e}");
    // Without a variable on the line, the error keeps its line and column.
    let e = err(&spec("rocm"));
    assert!(e.contains("rocm") && e.contains("p.yaml:9:"), "{e}");
}

#[test]
fn eval_schedules_take_a_cron_string_or_a_zoned_cron_and_must_fire() {
    let with = |schedule: &str| format!("{GOOD}eval:\n  qa: qa.jsonl\n  schedule: {schedule}\n");
    let s = parse(&with("\"0 3 * * *\""), Path::new("p.yaml")).unwrap();
    let schedule = s.eval.unwrap().schedule.unwrap();
    assert_eq!((schedule.cron(), schedule.tz()), ("0 3 * * *", None));
    let zoned = with("{cron: \"0 3 * * *\", tz: Europe/Madrid}");
    let s = parse(&zoned, Path::new("p.yaml")).unwrap();
    let schedule = s.eval.unwrap().schedule.unwrap();
    assert_eq!(
        (schedule.cron(), schedule.tz()),
        ("0 3 * * *", Some("Europe/Madrid"))
    );
    for (bad, why) in [
        ("\"0 0 30 2 *\"", "never fires"),
        ("{cron: \"0 3 * * *\", tz: Mars/Olympus}", "IANA"),
        ("{cron: \"0 3 * *\"}", "minute hour day month weekday"),
    ] {
        let e = err(&with(bad));
        assert!(e.contains("eval.schedule") && e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn combinations_serde_cannot_check_are_validated() {
    let e = err(&format!("{GOOD}  resume: true\n"));
    assert!(e.contains("sink.resume"), "{e}");
    let e = err(&format!("{GOOD}  indexes: [{{column: text}}]\n"));
    assert!(e.contains("sink.indexes[0].column"), "{e}");
    let e = err(&GOOD.replace(
        "  path: docs.jsonl",
        "  path: docs.jsonl\n  metadata_fields: [emb_1]",
    ));
    assert!(e.contains("reserved"), "{e}");
    for (field, value) in [("provider", "rocm"), ("precision", "int3")] {
        let e = err(&format!("{GOOD}encoder:\n  {field}: {value}\n"));
        assert!(
            e.contains(&format!("encoder.{field}")) && e.contains(value),
            "{e}"
        );
    }
    let e = err(&format!(
        "{GOOD}  indexes: [{{column: emb_64, type: hnsw}}]\n"
    ));
    assert!(e.contains("hnsw") && e.contains("ivf_pq"), "{e}");
}
