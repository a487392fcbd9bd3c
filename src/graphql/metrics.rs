//! GraphQL's share of the metrics: operations by kind (counted once parsed and within the
//! shape caps, whatever the transport) and the subscriptions open now.
//!
//! Counted by the transports rather than by a schema extension: any extension makes
//! async-graphql route every field of every result (each token event of a subscription
//! included) through its boxed extension chain.

use async_graphql::parser::types::{ExecutableDocument, OperationType};

/// Counts the operations a document declares.
pub fn count_operations(doc: &ExecutableDocument) {
    for (_, op) in doc.operations.iter() {
        crate::ops::metrics::graphql_operation(match op.node.ty {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        });
    }
}

/// Counts a subscription open for as long as it lives.
pub struct OpenSubscription(());

impl OpenSubscription {
    /// Counts one more.
    pub fn open() -> Self {
        crate::ops::metrics::graphql_subscriptions(1.0);
        OpenSubscription(())
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        crate::ops::metrics::graphql_subscriptions(-1.0);
    }
}
