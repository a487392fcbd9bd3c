//! GraphQL's share of the metrics: operations by kind (counted once parsed, whatever the
//! transport) and the subscriptions open now.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextSubscribe,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerResult, Variables};
use futures_util::stream::BoxStream;
use std::sync::Arc;

/// The extension.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetrics)
    }
}

/// Counts a subscription open for as long as it lives.
struct Open;

impl Open {
    fn new() -> Self {
        crate::ops::metrics::graphql_subscriptions(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        crate::ops::metrics::graphql_subscriptions(-1.0);
    }
}

#[async_trait::async_trait]
impl Extension for OperationMetrics {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        for (_, op) in doc.operations.iter() {
            crate::ops::metrics::graphql_operation(match op.node.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            });
        }
        Ok(doc)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, async_graphql::Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        let open = Open::new();
        next.run(ctx, stream)
            .map(move |r| {
                let _ = &open;
                r
            })
            .boxed()
    }
}
