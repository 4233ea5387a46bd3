//! Prints a bearer token for the local stack: `cargo run -p notify-testkit --bin token -- alice`.
//! Signed with `NOTIFY_JWT_HS256_KEY` (default: the local stack's development key), valid 12 h.
fn main() {
    let user = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "local-user".into());
    let key = std::env::var("NOTIFY_JWT_HS256_KEY")
        .unwrap_or_else(|_| "local-development-key-not-for-production".into());
    println!(
        "{}",
        notify_testkit::env::mint_token(&key, &user, 12 * 3600)
    );
}
