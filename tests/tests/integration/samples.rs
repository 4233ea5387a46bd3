//! The sample events under `events/` (used with `cargo lambda invoke --data-file`) stay valid.
use notify_domain::{EventEnvelope, SectionEvent};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = notify_testkit::workspace_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn each_sample_section_event_parses() {
    for (file, event, recipients) in [
        ("section-commented.json", "SectionCommented", 2),
        ("section-updated.json", "SectionUpdated", 2),
        ("section-subscribed.json", "SectionSubscribed", 1),
        ("removed-from-section.json", "RemovedFromSection", 1),
    ] {
        let envelope: EventEnvelope = serde_json::from_value(load(file)).unwrap();
        let parsed =
            SectionEvent::from_envelope(envelope).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(parsed.name.as_str(), event, "{file}");
        assert_eq!(parsed.recipients.len(), recipients, "{file}");
    }
}

#[test]
fn the_sqs_sample_has_one_good_and_one_malformed_record() {
    let batch = load("sqs-batch.json");
    let bodies: Vec<&str> = batch["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap())
        .collect();
    let results: Vec<bool> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<EventEnvelope>(b)
                .ok()
                .is_some_and(|e| SectionEvent::from_envelope(e).is_ok())
        })
        .collect();
    assert_eq!(results, [true, false]);
}
