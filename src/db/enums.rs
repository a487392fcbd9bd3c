//! The closed sets of values stored in TEXT columns, as Rust enums. Each maps to its wire
//! name in both backends; a stored value outside the set is a read error, never a silent
//! default. Later status columns (documents, plugins, jobs) are declared the same way.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;

/// Declares a TEXT-backed enum: its wire names, `as_str`/`parse`, Display, serde and diesel
/// mappings for SQLite and PostgreSQL.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// The value with this wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql<Text, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
                out.set_value(self.as_str());
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
                <str as ToSql<Text, diesel::pg::Pg>>::to_sql(self.as_str(), &mut out.reborrow())
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let s = String::from_sql(bytes)?;
                $name::parse(&s).ok_or_else(|| {
                    format!("unexpected {} value {s:?} in the database", stringify!($name)).into()
                })
            }
        }
    };
}

text_enum! {
    /// What a user may do.
    Role {
        /// Administers the instance.
        Admin = "admin",
        /// Everyone else.
        User = "user",
    }
}

text_enum! {
    /// Who wrote a message.
    MessageRole {
        /// The person.
        User = "user",
        /// The model.
        Assistant = "assistant",
        /// Instructions.
        System = "system",
        /// A tool's result.
        Tool = "tool",
    }
}

text_enum! {
    /// Where a message is in its life.
    MessageStatus {
        /// Reserved for an answer being generated.
        Streaming = "streaming",
        /// Finished.
        Complete = "complete",
        /// Stopped by the caller or a server stop; keeps what was generated.
        Cancelled = "cancelled",
        /// The model failed; keeps what was generated.
        Error = "error",
        /// The server stopped without finishing it (a crash); keeps the text of its last
        /// checkpoint.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// Which backend serves a model.
    Provider {
        /// The embedded llama.cpp.
        Local = "local",
        /// Any OpenAI-compatible server.
        OpenAi = "openai",
    }
}

text_enum! {
    /// Where a model runs (seed 000's `type`).
    ModelKind {
        /// On this machine.
        Local = "local",
        /// Behind a remote API.
        Cloud = "cloud",
    }
}

text_enum! {
    /// Where a job stands, as users see and filter it.
    JobState {
        /// Waiting for its next occurrence (or a retry).
        Scheduled = "scheduled",
        /// A run is claimed by a worker.
        Running = "running",
        /// Keeps its schedule but does not run (run-now still does).
        Paused = "paused",
        /// A one-off job whose run succeeded.
        Succeeded = "succeeded",
        /// A one-off job that used up its attempts.
        Failed = "failed",
        /// A one-off job cancelled before or while it ran.
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// How one run of a job ended.
    RunOutcome {
        /// Claimed by a worker, not ended yet.
        Running = "running",
        /// Finished with an output.
        Succeeded = "succeeded",
        /// Finished with an error.
        Failed = "failed",
        /// Stopped at a cancel request.
        Cancelled = "cancelled",
        /// Ended at the job's timeout.
        TimedOut = "timed_out",
        /// Its worker died or stopped before it ended (the lease ran out).
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// Why a run started.
    RunCause {
        /// The schedule's occurrence came due.
        Schedule = "schedule",
        /// A failed attempt is tried again.
        Retry = "retry",
        /// Someone asked to run it now.
        Manual = "manual",
    }
}

text_enum! {
    /// What a collection holds.
    CollectionKind {
        /// A collection its owner named.
        Named = "named",
        /// The documents of one agent.
        Agent = "agent",
        /// The documents of one chat.
        Chat = "chat",
        /// The admin's watched folders (`[rag] source_dirs`).
        Source = "source",
        /// A user's memory entries.
        Memory = "memory",
    }
}

text_enum! {
    /// What a document is, decided from its content.
    DocumentKind {
        /// PDF.
        Pdf = "pdf",
        /// Word (Office Open XML).
        Docx = "docx",
        /// Plain text.
        Text = "text",
        /// Markdown.
        Markdown = "markdown",
        /// HTML.
        Html = "html",
        /// Source code (py, js, ts, rs, …).
        Code = "code",
        /// Data files (json, yaml, csv).
        Data = "data",
        /// Images: stored and served, not indexed.
        Image = "image",
        /// A type Hearth cannot read itself, accepted because a running plugin implements
        /// `document_before_ingest` (which supplies its text).
        Other = "other",
    }
}

text_enum! {
    /// Where a document is on its way to the index.
    DocumentStatus {
        /// Waiting for an ingestion worker.
        Queued = "queued",
        /// Its text is being extracted and chunked.
        Extracting = "extracting",
        /// Its chunks are being embedded.
        Embedding = "embedding",
        /// Searchable.
        Indexed = "indexed",
        /// Ingestion failed (`error` says why); the bytes are kept.
        Failed = "failed",
        /// Kept and served, not indexed (images).
        Stored = "stored",
    }
}

text_enum! {
    /// Where an installed plugin stands; every process converges its instances to it.
    PluginState {
        /// Installed, never started (not even at boot).
        Disabled = "disabled",
        /// Enabled, not running now (an admin stopped it).
        Stopped = "stopped",
        /// Enabled and serving calls.
        Running = "running",
        /// Enabled, but it could not start or crashed repeatedly (`failure` says why).
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(serde_json::to_value(Provider::OpenAi).unwrap(), "openai");
    }
}
