//! The GraphQL schema: one builder shared by the server and `threatwatch
//! schema`, so the checked-in `schema.graphql` is exactly what is served.

pub mod errors;
pub mod guard;
pub mod limits;
pub mod loaders;
mod mutation;
mod query;
pub mod scalars;
mod subscription;
pub mod types;

use async_graphql::Schema;

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

use crate::service::Service;

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Query depth a real client needs (alerts → edges → node → event → alert
/// → event is 6) with room to spare; deeper documents only cost us.
const MAX_DEPTH: usize = 12;
const MAX_COMPLEXITY: usize = 5_000;

pub fn build(service: Option<Service>, introspection: bool) -> AppSchema {
    let mut builder = Schema::build(Query, Mutation, Subscription)
        .extension(errors::ErrorCodes)
        .extension(limits::DocumentLimits::new(introspection))
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(50);
    if let Some(service) = service {
        builder = builder
            .data(loaders::users(service.db.clone()))
            .data(loaders::silences(service.db.clone()))
            .data(service);
    }
    if !introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    build(None, true).sdl()
}
