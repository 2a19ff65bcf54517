//! Operators cannot break the service: maintenance commands run as root on
//! a state directory the service's user owns either work read-only
//! (`status`) or refuse with the exact `sudo -u OWNER …`; afterwards no file
//! there belongs to root and the service starts. (Runs where the tests run
//! as root, as in CI; elsewhere it says so and passes.)

use crate::common::agent::{command, file_ids, file_output, tail, wait_until_or, Agent, TestDir, DEADLINE};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// `nobody`: the service's user in this test.
const SERVICE: (u32, u32) = (65534, 65534);

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Every path under `dir` whose owner is not `uid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
            if m.uid() != uid {
                bad.push(e.path().display().to_string());
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    bad
}

#[test]
fn maintenance_commands_run_as_root_leave_a_service_that_starts() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run commands as root against a directory another user owns");
        return;
    }
    let dir = TestDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (state, out) = (dir.state_dir(), dir.path().join("out"));
    for d in [&state, &out] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(SERVICE.0), Some(SERVICE.1)).unwrap();
    }
    let out_file = out.join("out.jsonl");
    dir.write_config(&format!(
        "{}[[source]]\nname = \"demo\"\ntype = \"demo\"\ninterval = \"1s\"\n{}",
        dir.agent_section(),
        file_output("file", &out_file, 5)
    ));
    let agent = Agent::start_as(&dir, SERVICE.0, SERVICE.1);
    wait_until_or("the service's first events", DEADLINE, || !file_ids(&out_file).is_empty(), || agent.stderr());
    agent.stop();
    let before = file_ids(&out_file).len();

    let root = |args: &[&str]| {
        let o = command(args).arg("--config").arg(dir.config_path()).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    // status: read-only, from the snapshot.
    let (code, text) = root(&["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("read-only") && text.contains("demo"), "{text}");
    // Everything that writes refuses and says what to run instead.
    for args in [
        &["dead-letters", "list", "--output", "file"][..],
        &["dead-letters", "purge", "--output", "file"],
        &["replay", "--source", "demo", "--from", "1h"],
        &["replay", "--source", "demo", "--from", "1h", "--force"],
        &["run"],
    ] {
        let (code, text) = root(args);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert!(text.contains("belongs to user nobody") && text.contains("sudo -u nobody "), "{args:?}: {text}");
        assert!(text.contains(args[0]), "the advice repeats the command: {text}");
    }
    assert_eq!(not_owned_by(&state, SERVICE.0), Vec::<String>::new(), "files the service cannot open");

    // The service starts and goes on.
    let agent = Agent::start_as(&dir, SERVICE.0, SERVICE.1);
    wait_until_or(
        "the service to deliver again after the maintenance commands",
        DEADLINE,
        || file_ids(&out_file).len() > before,
        || tail(&agent.stderr(), 20),
    );
    agent.stop();
}
