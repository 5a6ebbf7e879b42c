//! Rebuilds the crate when a migration changes or is added: `sqlx::migrate!`
//! embeds migrations/ at compile time, and cargo does not see that folder
//! otherwise.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
