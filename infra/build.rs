//! `sqlx::migrate!` embeds the migration files at compile time but does not tell Cargo about
//! them: without this, adding a migration would not rebuild this crate.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
