//! `docs/openapi.json` documents exactly the routes the router serves.
use std::collections::BTreeSet;

use notify_testkit::TestEnv;
use serde_json::Value;

fn documented() -> BTreeSet<(String, String)> {
    let path = notify_testkit::workspace_root().join("docs/openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "put", "delete"] {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_document_lists_every_route_and_no_other() {
    let listed: BTreeSet<(String, String)> = notify_api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented(), listed);
}

#[tokio::test]
async fn every_listed_route_is_served() {
    let env = TestEnv::start().await;
    for (method, path) in notify_api::ROUTES {
        let concrete = path.replace("{id}", "some-id");
        // Without a token a served route answers 401 (or 200 for the public catalog); an
        // unknown route would answer 404 from the fallback.
        let reply = env.call(method, &concrete, None, None).await;
        let expected = if *path == "/catalog" { 200 } else { 401 };
        assert_eq!(
            reply.status.as_u16(),
            expected,
            "{method} {path}: {}",
            reply.raw
        );
    }
}
