//! `schema.graphql` must be exactly what the code builds.

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed at the repository root");
    let built = hearth::graphql::sdl();
    assert!(
        committed == built,
        "schema.graphql is stale: run `make schema` and commit it"
    );
}
