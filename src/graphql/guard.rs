//! Limits on the shape of a document that depth and complexity leave open: aliases per
//! operation, and the same response key repeated in one selection set (`{ __typename
//! __typename … }` ×500 costs exactly the complexity limit yet does nothing but burn work).
//! Checked right after parsing, before validation and execution, on every transport.

use crate::config::GraphqlConfig;
use crate::error::{AppError, ErrorCode};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use std::collections::{HashMap, HashSet};

/// Fragments nested deeper than this are left to the validator (which refuses cycles).
const MAX_FRAGMENT_NESTING: usize = 32;

/// Refuses a document over the alias or repetition caps, naming which.
pub fn check(doc: &ExecutableDocument, limits: &GraphqlConfig) -> Result<(), AppError> {
    for (_, op) in doc.operations.iter() {
        let mut walk = Walk {
            doc,
            aliases: 0,
            limits,
            expanding: HashSet::new(),
        };
        walk.selection_set(&op.node.selection_set.node, 0)?;
    }
    Ok(())
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    aliases: usize,
    limits: &'a GraphqlConfig,
    expanding: HashSet<&'a str>,
}

fn too_complex(message: String) -> AppError {
    AppError::new(ErrorCode::QueryTooComplex, message)
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<(), AppError> {
        let mut keys: HashMap<&str, usize> = HashMap::new();
        self.collect(set, nesting, &mut keys)
    }

    /// Counts the response keys of one selection set (fragments merge into it) and walks
    /// each field's own selection set.
    fn collect(
        &mut self,
        set: &'a SelectionSet,
        nesting: usize,
        keys: &mut HashMap<&'a str, usize>,
    ) -> Result<(), AppError> {
        if nesting > MAX_FRAGMENT_NESTING {
            return Ok(());
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    if f.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > self.limits.max_aliases {
                            return Err(too_complex(format!(
                                "at most {} aliases per operation",
                                self.limits.max_aliases
                            )));
                        }
                    }
                    let key = f.response_key().node.as_str();
                    let seen = keys.entry(key).or_default();
                    *seen += 1;
                    if *seen > self.limits.max_field_repeats {
                        return Err(too_complex(format!(
                            "`{key}` is selected more than {} times in one selection set",
                            self.limits.max_field_repeats
                        )));
                    }
                    self.selection_set(&f.selection_set.node, nesting)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.collect(&fragment.node.selection_set.node, nesting + 1, keys)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(def) = self.doc.fragments.get(&spread.node.fragment_name.node) else {
                        continue;
                    };
                    // A cycle is the validator's to refuse; do not loop here.
                    if !self.expanding.insert(name) {
                        continue;
                    }
                    self.collect(&def.node.selection_set.node, nesting + 1, keys)?;
                    self.expanding.remove(name);
                }
            }
        }
        Ok(())
    }
}

/// What a request's operation costs in rate-limit budget: its root fields (each alias its
/// own, fragments expanded), the `login` mutations apart since they spend the login budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootFields {
    /// `login` mutation fields.
    pub login: u32,
    /// Every other root field.
    pub other: u32,
}

impl RootFields {
    /// Both kinds.
    pub fn total(&self) -> u32 {
        self.login + self.other
    }

    /// Adds another operation's fields.
    pub fn add(&mut self, other: RootFields) {
        self.login += other.login;
        self.other += other.other;
    }
}

/// The root fields of the operation `operation` names (or the document's only one).
pub fn root_fields(doc: &ExecutableDocument, operation: Option<&str>) -> RootFields {
    let op = doc
        .operations
        .iter()
        .find(|(name, _)| match operation {
            Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
            None => true,
        })
        .map(|(_, op)| op);
    let mut fields = RootFields::default();
    if let Some(op) = op {
        let login_counts = op.node.ty == async_graphql::parser::types::OperationType::Mutation;
        let mut walk = RootWalk {
            doc,
            login_counts,
            expanding: HashSet::new(),
            fields: &mut fields,
        };
        walk.count(&op.node.selection_set.node, 0);
    }
    fields
}

struct RootWalk<'a, 'f> {
    doc: &'a ExecutableDocument,
    login_counts: bool,
    expanding: HashSet<&'a str>,
    fields: &'f mut RootFields,
}

impl<'a> RootWalk<'a, '_> {
    fn count(&mut self, set: &'a SelectionSet, nesting: usize) {
        if nesting > MAX_FRAGMENT_NESTING {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f)
                    if self.login_counts && f.node.name.node.as_str() == "login" =>
                {
                    self.fields.login += 1;
                }
                Selection::Field(_) => self.fields.other += 1,
                Selection::InlineFragment(fragment) => {
                    self.count(&fragment.node.selection_set.node, nesting + 1)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(def) = self.doc.fragments.get(&spread.node.fragment_name.node) else {
                        continue;
                    };
                    // A cycle is the validator's to refuse; do not loop here.
                    if !self.expanding.insert(name) {
                        continue;
                    }
                    self.count(&def.node.selection_set.node, nesting + 1);
                    self.expanding.remove(name);
                }
            }
        }
    }
}
