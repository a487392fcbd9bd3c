//! The seeds' rate-limit tables: which budget each REST door spends, whether it counts per
//! client address whoever calls (seeds 001 and 004 say "par IP"), and the shape its
//! refusals take. Seed 000's `/ws/chat` spends its budget per message (in its handler);
//! GraphQL per root field (in `graphql::transport`). docs/operations.md has the table.

use crate::limits::Rule;
use axum::response::Response;

/// How one door is limited.
#[derive(Clone, Copy)]
pub struct Door {
    /// The door's own budget, if the seeds give it one (an API key's own budget applies to
    /// every door regardless).
    pub rule: Option<Rule>,
    /// Counted per client address even for signed-in callers.
    pub per_address: bool,
    /// The API whose error body the door answers with.
    pub errors: ErrorShape,
}

/// The error bodies of the documented APIs (also named in the OpenAPI document).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// Hearth's default body: seeds 000, 001 and 003 (`detail`, `code`, `status`, …).
    Default,
    /// Seed 002: `{error: {code, message, details}, request_id}`.
    Nexus,
    /// OpenAI's `{error: {message, type, param, code}}`.
    OpenAi,
    /// Seed 004: the default body plus `error`.
    Runner,
}

impl ErrorShape {
    /// Renders a table error response in this shape (other responses pass unchanged).
    pub fn render(self, res: Response) -> Response {
        match self {
            ErrorShape::Default => res,
            ErrorShape::Nexus => super::nexus::nexus_shape(res),
            ErrorShape::OpenAi => super::openai::openai_shape(res),
            ErrorShape::Runner => super::runner::runner_shape(res),
        }
    }
}

/// Seed 001's doors (the auth doors it shares with seed 000 count as seed 000's).
const FOYER: &[&str] = &[
    "/api/agents",
    "/api/agents/my",
    "/api/agents/{id}",
    "/api/chats",
    "/api/chats/{id}",
    "/api/sessions/current",
    "/api/documents/upload",
    "/api/documents/{id}",
    "/api/messages",
    "/api/messages/stream/{chat_id}",
];

/// Seed 004's doors (`/api/models` is shared with seed 000 and counts as seed 004's).
const RUNNER: &[&str] = &[
    "/api/models",
    "/api/models/discover",
    "/api/config",
    "/api/parameters",
    "/api/parameters/{category}",
    "/api/parameters/category/{param}",
    "/api/monitoring",
    "/api/monitoring/history",
    "/api/websocket",
    "/metrics",
];

/// The door a matched route template belongs to.
pub fn door(route: &str) -> Door {
    let door = |rule, per_address, errors| Door {
        rule,
        per_address,
        errors,
    };
    if let Some(path) = route.strip_prefix("/api/v1/") {
        let rule = match path {
            p if p.starts_with("auth/") => Some(Rule::NexusAuth),
            "llm/chat" => Some(Rule::NexusLlmChat),
            "rag/query" => Some(Rule::NexusRagQuery),
            "agents/{agent_type}/invoke" => Some(Rule::NexusAgentInvoke),
            p if p.starts_with("video/") => Some(Rule::NexusVideo),
            _ => None,
        };
        return door(rule, false, ErrorShape::Nexus);
    }
    if route.starts_with("/v1/") {
        return door(None, false, ErrorShape::OpenAi);
    }
    if RUNNER.contains(&route) {
        return door(Some(Rule::Runner), true, ErrorShape::Runner);
    }
    if FOYER.contains(&route) {
        return door(Some(Rule::Foyer), true, ErrorShape::Default);
    }
    let rule = match route {
        "/api/auth/login" => Some(Rule::Login),
        "/api/chat" => Some(Rule::Chat),
        r if r.starts_with("/api/") => Some(Rule::Api),
        _ => None,
    };
    door(rule, false, ErrorShape::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_spend_their_seed_budgets() {
        let rule = |r: &str| door(r).rule;
        assert_eq!(rule("/api/v1/auth/login"), Some(Rule::NexusAuth));
        assert_eq!(
            rule("/api/v1/agents/{agent_type}/invoke"),
            Some(Rule::NexusAgentInvoke)
        );
        assert_eq!(
            rule("/api/v1/video/projects/{project_id}/start"),
            Some(Rule::NexusVideo)
        );
        assert_eq!(rule("/api/v1/keys"), None);
        assert_eq!(rule("/api/auth/login"), Some(Rule::Login));
        assert_eq!(rule("/api/chat"), Some(Rule::Chat));
        assert_eq!(rule("/api/conversations/{id}"), Some(Rule::Api));
        assert_eq!(rule("/api/chats"), Some(Rule::Foyer));
        assert!(door("/api/chats").per_address);
        assert_eq!(rule("/api/models"), Some(Rule::Runner));
        assert!(door("/metrics").per_address);
        assert_eq!(rule("/v1/chat/completions"), None);
        assert_eq!(rule("/plugins"), None);
        assert_eq!(rule("/graphql"), None);
        assert_eq!(door("/api/v1/keys").errors, ErrorShape::Nexus);
        assert_eq!(door("/v1/models").errors, ErrorShape::OpenAi);
        assert_eq!(door("/api/config").errors, ErrorShape::Runner);
        assert_eq!(door("/plugins").errors, ErrorShape::Default);
    }
}
