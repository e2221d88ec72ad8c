//! Packaging: the shipped default configs pass `check-config`, the units keep
//! the privileges they are meant to have, and (with
//! `CARETAKER_TEST_PACKAGING=1`, which `.ci/run` sets) `scripts/package.sh`
//! builds Debian packages whose files, conffiles, maintainer scripts and units
//! are checked after `dpkg -x`, with `systemd-analyze verify` and
//! `check-config` of the packaged binaries, plus a tarball whose
//! `install.sh` installs into a scratch root without overwriting a config.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn check_config(binary: &Path, config: &Path) {
    run(Command::new(binary).args(["check-config", "--config"]).arg(config));
}

#[test]
fn shipped_default_configs_pass_check_config() {
    let config = repo().join("packaging/config");
    check_config(&bin("caretaker-agent"), &config.join("agent.toml"));
    check_config(&bin("caretaker-collector"), &config.join("collector.toml"));
}

/// `Key=value` settings of a unit file (later settings of a key appended).
fn settings(unit: &str) -> Vec<(String, String)> {
    let path = repo().join("packaging/systemd").join(unit);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn get<'a>(s: &'a [(String, String)], key: &str) -> Option<&'a str> {
    s.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn caps(v: Option<&str>) -> BTreeSet<&str> {
    v.unwrap_or_default().split_whitespace().collect()
}

#[test]
fn units_run_as_caretaker_with_only_the_privileges_they_need() {
    for unit in ["caretaker-agent.service", "caretaker-collector.service"] {
        let s = settings(unit);
        assert_eq!(get(&s, "User"), Some("caretaker"), "{unit}");
        assert_eq!(get(&s, "NoNewPrivileges"), Some("true"), "{unit}");
        assert!(
            get(&s, "ExecStartPre").is_some_and(|c| c.contains("check-config")),
            "{unit}: check-config as ExecStartPre"
        );
        assert!(get(&s, "StateDirectory").is_some(), "{unit}");
    }
    let c = settings("caretaker-collector.service");
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "true"),
        ("PrivateTmp", "true"),
        ("CapabilityBoundingSet", ""),
        ("ReadWritePaths", "/var/lib/caretaker-collector"),
        // A login flood or a runaway must not take the machine's memory.
        ("MemoryMax", "2G"),
    ] {
        assert_eq!(get(&c, k), Some(v), "collector {k}");
    }
    // The agent: exactly what smartctl needs, ambient so it survives the exec.
    let a = settings("caretaker-agent.service");
    let want = BTreeSet::from(["CAP_SYS_RAWIO", "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"]);
    assert_eq!(caps(get(&a, "AmbientCapabilities")), want);
    assert_eq!(caps(get(&a, "CapabilityBoundingSet")), want);
    // No mount namespace: the agent must see the host's mounts as they are
    // (under ProtectSystem= every file system reads as read-only to it).
    for k in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ReadWritePaths",
        "ProtectKernelTunables",
        "ProtectControlGroups",
        "ProtectClock",
    ] {
        assert!(
            get(&a, k).is_none(),
            "agent unit sets {k}: it would change what the agent measures"
        );
    }
}

fn tool(name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{name} is needed with CARETAKER_TEST_PACKAGING=1 (.ci/run installs it)"
    );
}

#[test]
fn debian_packages_and_tarball_install_what_the_services_need() {
    if std::env::var("CARETAKER_TEST_PACKAGING").ok().as_deref() != Some("1") {
        eprintln!("CARETAKER_TEST_PACKAGING is not 1: skipping the package build");
        return;
    }
    for t in ["cargo-deb", "dpkg-deb", "systemd-analyze", "tar"] {
        tool(t);
    }
    // The binaries scripts/test.sh built (cargo holds the build lock while
    // tests run, so the script packages them instead of building again).
    let profile_dir = bin("caretaker-agent")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(p) => p.to_string(),
        None => panic!("no profile directory for {}", profile_dir.display()),
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = run(Command::new("bash")
        .arg(repo().join("scripts/package.sh"))
        .env("CARETAKER_PACKAGE_OUT", tmp.path().join("packages"))
        .env("CARETAKER_PACKAGE_PROFILE", &profile)
        .env("CARETAKER_PACKAGE_PREBUILT", "1"));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let artefacts: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    let find = |prefix: &str, suffix: &str| -> PathBuf {
        artefacts
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {prefix}*{suffix} in package.sh output:\n{listed}"))
    };

    for name in ["agent", "collector"] {
        let deb = find(&format!("caretaker-{name}_"), ".deb");
        let root = tmp.path().join(name);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        let binary = root.join(format!("usr/bin/caretaker-{name}"));
        let unit = root.join(format!("usr/lib/systemd/system/caretaker-{name}.service"));
        let config = root.join(format!("etc/caretaker/{name}.toml"));
        for f in [&binary, &unit, &config] {
            assert!(f.is_file(), "{} lacks {}", deb.display(), f.display());
        }
        // Control: package name, conffile, maintainer scripts that parse.
        let control = tmp.path().join(format!("{name}-control"));
        run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
        let fields = std::fs::read_to_string(control.join("control")).unwrap_or_default();
        assert!(fields.contains(&format!("Package: caretaker-{name}\n")), "{fields}");
        let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
        assert!(
            conffiles
                .lines()
                .any(|l| l.trim() == format!("/etc/caretaker/{name}.toml")),
            "conffiles: {conffiles:?}"
        );
        for script in ["postinst", "prerm", "postrm"] {
            let s = control.join(script);
            assert!(s.is_file(), "{} has no {script}", deb.display());
            run(Command::new("sh").arg("-n").arg(&s));
        }
        // The packaged binary runs and accepts the packaged config.
        check_config(&binary, &config);
        // systemd-analyze verify: the unit as installed, with ExecStart*
        // pointing at the extracted binary (verify wants it to exist).
        let text = std::fs::read_to_string(&unit).unwrap_or_default();
        let verify_dir = tmp.path().join(format!("{name}-verify"));
        std::fs::create_dir_all(&verify_dir).unwrap_or_else(|e| panic!("{e}"));
        let copy = verify_dir.join(format!("caretaker-{name}.service"));
        let rewritten = text.replace(&format!("/usr/bin/caretaker-{name}"), &binary.display().to_string());
        std::fs::write(&copy, rewritten).unwrap_or_else(|e| panic!("{e}"));
        let out = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.trim().is_empty(), "systemd-analyze verify {name}: {said}");
    }

    // The tarball: install.sh into a scratch root, twice; an edited config survives.
    let tarball = find("caretaker-", ".tar.gz");
    let unpacked = tmp.path().join("tarball");
    std::fs::create_dir_all(&unpacked).unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&unpacked));
    let top = std::fs::read_dir(&unpacked)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("empty tarball {}", tarball.display()));
    let root = tmp.path().join("installed");
    let install = || run(Command::new("sh").arg(top.join("install.sh")).arg("--root").arg(&root));
    install();
    for f in [
        "usr/local/bin/caretaker-agent",
        "usr/local/bin/caretaker-collector",
        "etc/systemd/system/caretaker-agent.service",
        "etc/systemd/system/caretaker-collector.service",
        "etc/caretaker/agent.toml",
        "etc/caretaker/collector.toml",
    ] {
        assert!(root.join(f).is_file(), "install.sh did not install {f}");
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/caretaker-agent.service")).unwrap_or_default();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/caretaker-agent run"),
        "unit not pointed at /usr/local/bin: {unit}"
    );
    let agent_toml = root.join("etc/caretaker/agent.toml");
    let edited = "collector_url = \"https://collector.acme.example:8443\"\nca_file = \"/etc/caretaker/ca.pem\"\n";
    std::fs::write(&agent_toml, edited).unwrap_or_else(|e| panic!("{e}"));
    install();
    assert_eq!(std::fs::read_to_string(&agent_toml).unwrap_or_default(), edited);
    assert!(root.join("etc/caretaker/agent.toml.new").is_file());
    check_config(&root.join("usr/local/bin/caretaker-agent"), &agent_toml);
}
