//! Rule-set loading: the shipped files load, and every kind of bad file is
//! rejected with an error naming the file, the key and the problem.

use nisvakt_domain::rules::{
    self, Anchor, Certainty, Comparison, CriterionKind, Lead, Requirement, Trigger,
};
use std::path::PathBuf;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nisvakt-domain-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn both_shipped_files_load_from_disk_and_match_the_embedded_copies() {
    let sets = rules::load_spec(&rules_dir().display().to_string()).unwrap();
    let ids: Vec<_> = sets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["cybersecurity-act-2025", "seed-routine"],
        "sorted by file name, lexicon skipped"
    );
    let builtin = rules::builtin();
    assert_eq!(builtin[0].id, "seed-routine");
    assert!(builtin[0].default);
    assert!(!builtin[1].default);
    assert_eq!(builtin[0].criteria, sets[1].criteria);
    assert_eq!(builtin[1].duties, sets[0].duties);
}

#[test]
fn the_seed_routine_says_exactly_what_domain_md_says() {
    let seed = &rules::builtin()[0];
    let ids: Vec<_> = seed.criteria.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["patient_harm", "care_interrupted_2h", "system_disrupted_6h"]
    );
    assert_eq!(
        seed.criteria[1].kind,
        CriterionKind::Duration {
            threshold: chrono::Duration::hours(2),
            comparison: Comparison::AtLeast,
            requires: Some(Requirement::CareBlocked)
        }
    );
    assert_eq!(
        seed.criteria[2].kind,
        CriterionKind::Duration {
            threshold: chrono::Duration::hours(6),
            comparison: Comparison::AtLeast,
            requires: None
        }
    );
    let nis = seed.duty("nis").unwrap();
    assert_eq!(nis.trigger, Trigger::Reportable);
    let s: Vec<_> = nis
        .stages
        .iter()
        .map(|s| (s.id.as_str(), s.due.num_hours(), s.anchor.clone()))
        .collect();
    assert_eq!(
        s,
        [
            ("1", 6, Anchor::Identified),
            ("2", 24, Anchor::Identified),
            ("3", 28 * 24, Anchor::FirstReport)
        ]
    );
    assert_eq!(nis.stages[0].label_sv, "Skede 1");
    assert_eq!(
        nis.stages[0].warn_before,
        [
            Lead::Percent(50),
            Lead::Before(chrono::Duration::hours(1)),
            Lead::Before(chrono::Duration::minutes(15))
        ]
    );
    for needle in [
        "iron.msb.se",
        "010-240 40 40",
        "Box 6081, 171 06 Solna",
        "Terminalvägen 14",
        "kuvert i kuvert",
        "cert@cert.se",
    ] {
        assert!(nis.stages[0].instructions_sv.contains(needle), "{needle}");
    }
    assert_eq!(
        seed.duty("personal_data").unwrap().stages[0]
            .due
            .num_hours(),
        72
    );
    assert_eq!(
        seed.duty("personal_data").unwrap().trigger,
        Trigger::PersonalDataBreach
    );
    assert!(seed.duty("lex_maria").unwrap().stages[0].internal_target);
    assert!(
        seed.duty("security_protection").unwrap().stages[0]
            .channel_sv
            .contains("ALDRIG vanlig e-post")
    );
    assert!(seed.notes.iter().any(|n| n.text.contains("MSBFS 2018:9")));
}

#[test]
fn unverified_values_of_the_cybersecurity_act_reach_its_stages_and_criteria() {
    let csl = &rules::builtin()[1];
    assert_eq!(csl.awareness, Some(Anchor::Identified));
    let nis = csl.duty("nis").unwrap();
    assert_eq!(
        nis.stages[0].anchor,
        Anchor::Identified,
        "awareness resolves to the parameter"
    );
    assert_eq!(nis.stages[0].certainty, Certainty::Unverified);
    assert_eq!(nis.stages[2].anchor, Anchor::Report("notification".into()));
    assert_eq!(csl.criteria[0].certainty, Certainty::Unverified);
    assert_eq!(
        csl.duty("personal_data").unwrap().stages[0].certainty,
        Certainty::Confirmed
    );
    let sec = csl.duty("security_protection").unwrap();
    assert!(
        sec.stages[0]
            .channel_sv
            .contains("sakerhetsskydd@sakerhetspolisen.se")
    );
    assert!(sec.source.as_deref().unwrap_or("").contains("2021:955"));
    let seed = &rules::builtin()[0];
    assert_eq!(
        seed.duty("nis").unwrap().stages[0].certainty,
        Certainty::Confirmed
    );
    assert_eq!(
        seed.duty("lex_maria").unwrap().stages[0].certainty,
        Certainty::Reported
    );
}

#[test]
fn each_kind_of_bad_file_names_the_file_the_key_and_the_problem() {
    let seed = rules::SEED_ROUTINE;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            seed.replacen("threshold = \"2h\"", "threshold = \"2x\"", 1),
            "criteria[1].threshold",
            "\"2x\" is not a duration (use 15m, 2h, 28d)",
        ),
        (
            seed.replacen("threshold = \"2h\"", "threshold = 2", 1),
            "criteria[1].threshold",
            "must be a duration string",
        ),
        (
            seed.replacen("threshold = \"2h\"", "treshold = \"2h\"", 1),
            "criteria[1].treshold",
            "unknown key",
        ),
        (
            seed.replacen("id = \"seed-routine\"", "", 1),
            "id",
            "is required",
        ),
        (
            seed.replacen("version = \"2026.1\"", "version = \"\"", 1),
            "version",
            "must not be empty",
        ),
        (
            seed.replacen("certainty = \"confirmed\"", "certainty = \"sure\"", 1),
            "certainty",
            "\"sure\" is not a certainty",
        ),
        (
            seed.replacen("kind = \"judgement\"", "kind = \"vibes\"", 1),
            "criteria[0].kind",
            "is not a criterion kind",
        ),
        (
            seed.replacen("comparison = \"at_least\"", "comparison = \"about\"", 1),
            "criteria[1].comparison",
            "is not a comparison",
        ),
        (
            seed.replacen("requires = \"care_blocked\"", "requires = \"coffee\"", 1),
            "criteria[1].requires",
            "is not a requirement",
        ),
        (
            seed.replacen("fact = \"patient_harm\"", "fact = \"weather\"", 1),
            "criteria[0].fact",
            "is not a fact",
        ),
        (
            seed.replacen(
                "id = \"system_disrupted_6h\"",
                "id = \"care_interrupted_2h\"",
                1,
            ),
            "criteria[2].id",
            "used by two criteria",
        ),
        (
            seed.replacen("trigger = \"reportable\"", "trigger = \"always\"", 1),
            "duties[0].trigger",
            "is not a trigger",
        ),
        (
            seed.replacen("due = \"6h\"", "due = \"six hours\"", 1),
            "duties[0].stages[0].due",
            "is not a duration",
        ),
        (
            seed.replacen("due = \"6h\"", "due = \"0h\"", 1),
            "duties[0].stages[0].due",
            "longer than zero",
        ),
        (
            seed.replacen("anchor = \"first_report\"", "anchor = \"lunch\"", 1),
            "duties[0].stages[2].anchor",
            "is not an anchor",
        ),
        (
            seed.replacen("anchor = \"first_report\"", "anchor = \"report:9\"", 1),
            "duties[0].stages[2].anchor",
            "earlier stage",
        ),
        (
            seed.replacen("anchor = \"first_report\"", "anchor = \"awareness\"", 1),
            "duties[0].stages[2].anchor",
            "top-level awareness",
        ),
        (
            seed.replacen("anchor = \"identified\"", "anchor = \"first_report\"", 1),
            "duties[0].stages[0].anchor",
            "first stage",
        ),
        (
            seed.replacen("anchor = \"confirmed\"", "anchor = \"identified\"", 1),
            "duties[1].stages[0].anchor",
            "needs trigger = \"reportable\"",
        ),
        (
            seed.replacen(
                "warn_before = [\"50%\", \"1h\", \"15m\"]",
                "warn_before = [\"150%\"]",
                1,
            ),
            "duties[0].stages[0].warn_before[0]",
            "between 1% and 99%",
        ),
        (
            seed.replacen(
                "warn_before = [\"50%\", \"1h\", \"15m\"]",
                "warn_before = [\"50%\", \"soon\"]",
                1,
            ),
            "duties[0].stages[0].warn_before[1]",
            "\"soon\" is not a duration",
        ),
        (
            seed.replacen("overdue_every = \"1h\"", "overdue_every = \"often\"", 1),
            "duties[0].stages[0].overdue_every",
            "is not a duration",
        ),
        (
            seed.replacen("label_sv = \"Skede 1\"", "", 1),
            "duties[0].stages[0].label_sv",
            "is required",
        ),
        (
            seed.replacen("id = \"2\"", "id = \"1\"", 1),
            "duties[0].stages[1].id",
            "two stages",
        ),
        (
            seed.replacen(
                "due = { value = \"24h\", certainty = \"reported\",",
                "due = { value = \"24h\", certainty = \"maybe\",",
                1,
            ),
            "duties[2].stages[0].due.certainty",
            "is not a certainty",
        ),
        (
            seed.replacen(
                "due = { value = \"24h\", certainty = \"reported\",",
                "due = { certainty = \"reported\",",
                1,
            ),
            "duties[2].stages[0].due.value",
            "is required",
        ),
        (
            seed.replacen("id = \"personal_data\"", "id = \"Personal Data\"", 1),
            "duties[1].id",
            "may only use",
        ),
        (
            seed.replacen("default = true", "default = \"yes\"", 1),
            "default",
            "true or false",
        ),
        (
            seed.replacen("id = \"seed-routine\"", "id = \"seed.routine\"", 1),
            "id",
            "may only use",
        ),
        (
            seed.replacen("id = \"3\"", "id = \"skede 3\"", 1),
            "duties[0].stages[2].id",
            "may only use",
        ),
        (
            seed.replacen("id = \"patient_harm\"", "id = \"patient-harm\"", 1),
            "criteria[0].id",
            "may only use",
        ),
        (
            seed.replacen(
                "warn_before = [\"50%\", \"1h\", \"15m\"]",
                "warn_before = \"1h\"",
                1,
            ),
            "duties[0].stages[0].warn_before",
            "must be a list of strings",
        ),
    ];
    for (i, (text, key, problem)) in cases.into_iter().enumerate() {
        assert_ne!(text, seed, "case {i} ({key}) did not change the file");
        let err = rules::parse(&text, "rules/seed.toml")
            .unwrap_err()
            .to_string();
        let want = format!("rules/seed.toml: {key}: ");
        assert!(
            err.starts_with(&want),
            "case {i}: {err:?} should start with {want:?}"
        );
        assert!(
            err.contains(problem),
            "case {i}: {err:?} should contain {problem:?}"
        );
    }
    assert_eq!(
        rules::parse(
            &rules::SEED_ROUTINE.replacen("threshold = \"2h\"", "threshold = \"2x\"", 1),
            "rules/seed.toml"
        )
        .unwrap_err()
        .to_string(),
        "rules/seed.toml: criteria[1].threshold: \"2x\" is not a duration (use 15m, 2h, 28d)"
    );
}

#[test]
fn broken_toml_unreadable_files_empty_specs_and_duplicate_ids_are_errors() {
    let err = rules::parse("id = \"x", "rules/bad.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("rules/bad.toml: not valid TOML"), "{err}");

    let err = rules::load_file("/nonexistent/x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/nonexistent/x.toml: cannot read"), "{err}");

    let empty = scratch("empty");
    std::fs::write(empty.join("lexicon.toml"), rules::SEED_ROUTINE).unwrap();
    let err = rules::load_spec(&empty.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no rule-set files found"), "{err}");

    let dup = scratch("dup");
    std::fs::write(dup.join("a.toml"), rules::SEED_ROUTINE).unwrap();
    std::fs::write(dup.join("b.toml"), rules::SEED_ROUTINE).unwrap();
    let err = rules::load_spec(&dup.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.toml: id: \"seed-routine\" is already declared by"),
        "{err}"
    );
    assert!(err.contains("a.toml"), "{err}");

    let spec = format!("{}, builtin", dup.join("a.toml").display());
    assert!(
        rules::load_spec(&spec).is_err(),
        "a file and builtin both declare seed-routine"
    );
    let one = rules::load_spec(&format!(" {} ,", dup.join("a.toml").display())).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(rules::load_spec("builtin").unwrap().len(), 2);
}

#[test]
fn the_lexicon_on_disk_is_the_embedded_default_and_bad_paths_are_named() {
    let on_disk = nisvakt_domain::text::Lexicon::load(rules_dir().join("lexicon.toml")).unwrap();
    assert_eq!(on_disk, nisvakt_domain::text::Lexicon::default_sv());
    let err = nisvakt_domain::text::Lexicon::load("/nonexistent/lexicon.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/lexicon.toml: cannot read"),
        "{err}"
    );
}
