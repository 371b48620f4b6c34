//! Bad input files, bad arguments and exit codes.

use crate::common::{Env, s, write_jsonl};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_lines_stop_with_their_line_number_and_write_nothing_of_the_batch() {
    let env = Env::new();
    env.json(&["create-table", "t", "--dim", "3"]);
    let cases = [
        (
            "{\"id\":\"a\",\"vector\":[1,2,3]}\n{\"id\":\"b\",\"vector\":[1,2]}\n",
            "line 2",
            "dimension",
        ),
        (
            "{\"id\":\"a\",\"vector\":[1,2,3]}\n\n{not json\n",
            "line 3",
            "invalid JSON",
        ),
        (
            "{\"id\":\"a\",\"vector\":[1,\"x\",3]}\n",
            "line 1",
            "not a number",
        ),
        ("{\"vector\":[1,2,3]}\n", "line 1", "missing `id`"),
        (
            "{\"id\":\"a\",\"vector\":[1,2,3],\"image_b64\":\"***\"}\n",
            "line 1",
            "base64",
        ),
        (
            "{\"id\":\"a\",\"vector\":[1,2,3]}\n{\"id\":\"a\",\"vector\":[1,2,3]}\n",
            "line 2",
            "twice",
        ),
        (
            "{\"id\":\"a\",\"vector\":[1,2,3],\"colour\":1}\n",
            "line 1",
            "unknown key",
        ),
    ];
    for (i, (content, at, why)) in cases.iter().enumerate() {
        let f = env.path(&format!("bad{i}.jsonl"));
        std::fs::write(&f, content).unwrap();
        let out = env.run(&["import", "t", s(&f)]);
        assert_eq!(out.status.code(), Some(3), "case {i}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(at) && err.contains(why), "case {i}: {err}");
    }
    assert_eq!(
        env.json(&["stats", "t"])["tables"][0]["stats"]["rows"],
        0,
        "nothing half-written"
    );
}

#[test]
fn skip_bad_counts_and_reports() {
    let env = Env::new();
    let f = env.path("mixed.jsonl");
    std::fs::write(
        &f,
        "{\"id\":\"a\",\"vector\":[1,2]}\nnot json\n{\"id\":\"b\",\"vector\":[1]}\n{\"id\":\"c\",\"vector\":[3,4]}\n",
    )
    .unwrap();
    let doc = env.json(&["import", "t", s(&f), "--create", "--dim", "2", "--skip-bad"]);
    assert_eq!(doc["imported"], 2);
    assert_eq!(doc["skipped"], 2);
    assert!(
        doc["skipped_samples"][0]
            .as_str()
            .unwrap()
            .contains("line 2")
    );
}

#[test]
fn exit_codes() {
    let env = Env::new();
    let out = env.run(&["search", "missing", "--vector", "[1,2]"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not found"));
    assert!(stderr(&out).contains("hint:"));
    assert_eq!(env.run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(env.run(&["search"]).status.code(), Some(2));
    env.json(&["create-table", "t", "--dim", "2", "--field", "year:int"]);
    let out = env.run(&[
        "search",
        "t",
        "--vector",
        "[1,2]",
        "--filter",
        "{\"year\": {\"$bad\": 1}}",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("$bad"), "{}", stderr(&out));
    let out = env.run(&["search", "t", "--vector", "[1,2,3]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected 2, got 3"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["create-table", "u", "--dim", "2", "--field", "bad"]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["import", "t", s(&env.path("nope.jsonl"))]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let f = env.path("x.dat");
    write_jsonl(&f, 1, 2);
    let out = env.run(&["import", "t", s(&f)]);
    assert!(stderr(&out).contains("--format"), "{}", stderr(&out));
}
