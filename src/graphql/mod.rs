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
mod webhooks;

use std::sync::Arc;

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Data, Request, Response, Schema, ServerError};

pub use subscription::Subscription;

use crate::service::Service;

pub type AppSchema = Schema<Query, Mutation, Subscription>;

// Every query: the core ones and each area's, merged into one root. (Plain
// comments: a doc comment would become the root type's description.)
#[derive(async_graphql::MergedObject)]
pub struct Query(query::Query, webhooks::WebhookQuery);

// Every mutation, merged like `Query`.
#[derive(async_graphql::MergedObject)]
pub struct Mutation(mutation::Mutation, webhooks::WebhookMutation);

pub fn build(service: Option<Service>, introspection: bool) -> AppSchema {
    // Depth is limited by `limits`, which leaves introspection out of it;
    // the complexity pass runs only on documents `limits` has bounded.
    let mut builder = Schema::build(
        Query(query::Query, webhooks::WebhookQuery),
        Mutation(mutation::Mutation, webhooks::WebhookMutation),
        Subscription,
    )
    .limit_complexity(limits::MAX_NODES)
    .limit_directives(50);
    if let Some(service) = service {
        builder = builder
            .data(loaders::users(service.clone()))
            .data(loaders::silences(service.clone()))
            .data(service);
    }
    if !introspection {
        // "Did you mean ...?" would spell out the schema introspection hides.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// What the transports execute: the schema behind the document limits, with
/// every response's errors given their codes. The two used to be
/// async-graphql extensions; see `limits::DocumentLimits` for why not.
#[derive(Clone)]
pub struct Gateway {
    schema: AppSchema,
    limits: Arc<limits::DocumentLimits>,
}

impl Gateway {
    pub fn new(service: Service) -> Self {
        let introspection = service.settings.introspection;
        Self {
            schema: build(Some(service), introspection),
            limits: Arc::new(limits::DocumentLimits::new(introspection)),
        }
    }
}

impl async_graphql::Executor for Gateway {
    async fn execute(&self, mut request: Request) -> Response {
        crate::metrics::graphql_operation();
        match self.limits.prepare(&mut request) {
            Ok(()) => errors::finish(self.schema.execute(request).await),
            Err(e) => refused(e),
        }
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.limits.prepare(&mut request) {
            Ok(()) => self
                .schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default())
                .map(errors::finish)
                .boxed(),
            Err(e) => stream::once(async move { refused(e) }).boxed(),
        }
    }
}

/// The answer to a request the document limits refused.
fn refused(error: ServerError) -> Response {
    errors::finish(Response::from_errors(vec![error]))
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    build(None, true).sdl()
}
