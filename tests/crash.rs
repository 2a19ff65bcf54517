//! SIGKILL at the two dangerous moments of a batch's life, with the real
//! binary: after the journal write but before any send (nothing may be
//! lost), and after HEC received the batch but before the offset commit
//! (it is sent again: at most one batch of duplicates).

use crate::common;

use common::agent::{HecOutput, TestDir, DEADLINE};
use common::api::FakeApi;
use common::hec::{FakeHec, Mode, HEC_TOKEN};
use common::{api_config, assert_at_least_once, assert_exactly_once, wait_hec_has};
use std::collections::BTreeSet;

#[test]
fn killed_between_journal_write_and_send_loses_nothing() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_mode(Mode::Refuse);
    let mut expected = api.add_history(30);
    dir.write_config(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    let agent = dir.start();
    common::agent::wait_until_or(
        "every event journaled and the output trying to send",
        DEADLINE,
        || {
            dir.try_status_json().is_some_and(|s| s["journal"]["next_seq"].as_u64() == Some(expected.len() as u64))
                && hec.refused_connections() >= 2
        },
        || agent.stderr(),
    );
    let log = agent.kill();
    assert!(hec.event_ids().is_empty(), "HEC was refusing: {:?}", hec.event_ids());
    assert!(log.contains("receiver unavailable"), "{log}");

    hec.set_mode(Mode::Up);
    let agent = dir.start();
    expected.extend(api.add_now(4));
    wait_hec_has(&hec, &expected, "every event after the restart", || agent.stderr());
    agent.stop();
    assert_exactly_once(&hec.event_ids(), &expected, "killed before sending");
}

#[test]
fn killed_between_send_and_commit_resends_at_most_that_batch() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_mode(Mode::HangAfterReceive);
    let mut expected = api.add_history(30);
    let output = HecOutput { max_events: 10, ..HecOutput::new("hec", &hec.url(), HEC_TOKEN) };
    dir.write_config(&api_config(&dir, &api, &output.toml()));
    let agent = dir.start();
    common::agent::wait_until_or("HEC to receive a batch", DEADLINE, || !hec.event_ids().is_empty(), || agent.stderr());
    agent.kill();
    let in_flight: BTreeSet<String> = hec.event_ids().into_iter().collect();
    assert!(in_flight.len() <= 10, "one batch was in flight: {in_flight:?}");

    hec.set_mode(Mode::Up);
    let agent = dir.start();
    expected.extend(api.add_now(4));
    wait_hec_has(&hec, &expected, "every event after the restart", || agent.stderr());
    agent.stop();
    let ids = hec.event_ids();
    let copies = assert_at_least_once(&ids, &expected, 10, "killed before the commit");
    let dup: BTreeSet<String> = common::duplicates(&ids).into_keys().collect();
    assert_eq!(dup, in_flight, "exactly the unconfirmed batch was sent again");
    assert_eq!(copies, in_flight.len());
}
