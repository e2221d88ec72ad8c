//! `caretaker-collector hash-password` and `hash-token`: what they print goes
//! into a user's entry in the contracts file, which `contracts check` then
//! accepts, and the password and token verify against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use caretaker_collector::auth;

#[test]
fn hashes_go_into_a_contracts_file_that_checks() {
    let (code, stdout, stderr) = common::collector_with_input(["hash-password"], "pass word\n");
    assert_eq!(code, 0, "{stderr}");
    let phc = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    assert!(auth::verify_password(phc, "pass word"));
    assert!(!auth::verify_password(phc, "pass word\n"));

    let (code, stdout, stderr) = common::collector(["hash-token"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let (token, line) = (lines[0], lines[1]);
    assert_eq!(token.len(), 64);
    assert_eq!(line, format!("sha256:{}", auth::token_hash(token)));
    let (_, again, _) = common::collector(["hash-token"]);
    assert_ne!(again, stdout, "tokens are random");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.toml");
    let text = format!(
        "[[customer]]\nname = \"acme\"\n\n[[user]]\nname = \"carol\"\nrole = \"customer\"\ncustomer = \"acme\"\npassword = \"{phc}\"\ntokens = [\"{line}\"]\n"
    );
    std::fs::write(&file, &text).unwrap();
    let (code, stdout, stderr) =
        common::collector([std::ffi::OsStr::new("contracts"), "check".as_ref(), file.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("0 rotation(s), 1 user(s))\n"), "{stdout}");
    let checked = caretaker_collector::contracts::load(&file).unwrap();
    assert_eq!(
        checked.user_by_token(&auth::token_hash(token)).map(|u| u.name.as_str()),
        Some("carol")
    );

    // A broken hash is named with its line.
    std::fs::write(&file, text.replace("$argon2id$", "$argon2x$")).unwrap();
    let (code, _, stderr) = common::collector([std::ffi::OsStr::new("contracts"), "check".as_ref(), file.as_os_str()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("contracts.toml:5: user \"carol\": password:"),
        "{stderr}"
    );
}

#[test]
fn an_empty_password_is_refused() {
    let (code, stdout, stderr) = common::collector_with_input(["hash-password"], "\n");
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("no password on standard input"), "{stderr}");
}

#[test]
fn serve_refuses_a_broken_contracts_file_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, stderr) = common::collector([
        std::ffi::OsStr::new("init"),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--san".as_ref(),
        "localhost".as_ref(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let contracts = dir.path().join("contracts.toml");
    std::fs::write(
        &contracts,
        "[[user]]\nname = \"zed\"\nrole = \"admin\"\npassword = \"x\"\n",
    )
    .unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!("[queue]\ncontracts_file = {:?}\n", contracts.display().to_string()),
    )
    .unwrap();
    let (code, _, stderr) = common::collector([
        std::ffi::OsStr::new("serve"),
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("contracts.toml:2: user \"zed\": role: \"admin\" is not one of engineer, manager, customer"),
        "{stderr}"
    );
}
