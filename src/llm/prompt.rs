//! Fitting a conversation into a model's context window. Remote models are counted with a
//! conservative estimate (no tokenizer for them here); the local engine re-trims with exact
//! counts from the model's own tokenizer.

use super::PromptMessage;

/// Estimated tokens of one message: one per 3 characters (conservative for English, where a
/// token averages about 4) plus per-message framing.
pub fn estimate_tokens(m: &PromptMessage) -> u32 {
    let chars = m.content.chars().count() as u32;
    chars.div_ceil(3) + 4
}

/// Estimated tokens of a whole prompt.
pub fn estimate_messages(msgs: &[PromptMessage]) -> u32 {
    msgs.iter().map(estimate_tokens).sum::<u32>() + 3
}

/// Drops the oldest non-system messages until the prompt fits `budget` tokens. System
/// messages and the last message (the one being answered) are always kept, so the result
/// may still exceed a budget smaller than those alone.
pub fn trim_to_window(
    msgs: Vec<PromptMessage>,
    budget: u32,
    count: impl Fn(&PromptMessage) -> u32,
) -> Vec<PromptMessage> {
    let costs: Vec<u32> = msgs.iter().map(&count).collect();
    let mut total: u32 = costs.iter().sum();
    let last = msgs.len().saturating_sub(1);
    let mut keep = vec![true; msgs.len()];
    for (i, m) in msgs.iter().enumerate() {
        if total <= budget {
            break;
        }
        if i == last || m.role == "system" {
            continue;
        }
        keep[i] = false;
        total -= costs[i];
    }
    msgs.into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_go_first_system_and_last_stay() {
        let msgs = vec![
            PromptMessage::new("system", "s"),
            PromptMessage::new("user", "old"),
            PromptMessage::new("assistant", "older answer"),
            PromptMessage::new("user", "recent"),
            PromptMessage::new("user", "now"),
        ];
        let out = trim_to_window(msgs, 3, |_| 1);
        let roles: Vec<_> = out.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(roles, vec!["s", "recent", "now"]);
    }
}
