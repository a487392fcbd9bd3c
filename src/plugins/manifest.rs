//! `plugin.toml`: what a plugin is, which of its exports are tools and hooks, what it may
//! reach and how much it may use. Unknown keys are errors that name the key, so a typo in a
//! permission never silently grants or drops anything.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A validated plugin manifest.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[a-z0-9_-]{1,64}`: the plugin's key in every door.
    pub name: String,
    /// Semver; a higher version upgrades in place.
    pub version: String,
    /// Shown to admins and users.
    #[serde(default)]
    pub description: String,
    /// The module's path inside the bundle.
    #[serde(default = "default_wasm")]
    pub wasm: String,
    /// Hooks the plugin implements (each an export of the same name).
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Exports agents may call.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// Everything the plugin may reach beyond its own memory.
    #[serde(default)]
    pub permissions: Permissions,
    /// Its own limits, capped by the server's maxima.
    #[serde(default)]
    pub limits: Limits,
}

fn default_wasm() -> String {
    "plugin.wasm".into()
}

/// Points in a chat turn or an ingestion where enabled plugins are called.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Before a user's message is stored and sent: allow, rewrite or refuse it.
    MessageBeforeSend,
    /// After an answer is stored: sees the final text.
    MessageAfterReceive,
    /// Before a document is extracted: may supply the text of a type Hearth cannot read.
    DocumentBeforeIngest,
}

impl Hook {
    /// The export that implements it.
    pub fn function(self) -> &'static str {
        match self {
            Hook::MessageBeforeSend => "message_before_send",
            Hook::MessageAfterReceive => "message_after_receive",
            Hook::DocumentBeforeIngest => "document_before_ingest",
        }
    }
}

/// A function agents may call, described for the model in the OpenAI tools format.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Unique among enabled plugins; what the model calls.
    pub name: String,
    /// The export it runs (JSON in, JSON out).
    pub function: String,
    /// Tells the model when to use it.
    #[serde(default)]
    pub description: String,
    /// Groups tools in listings.
    #[serde(default)]
    pub category: String,
    /// JSON schema of the arguments (an object schema).
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
}

fn empty_object_schema() -> Value {
    serde_json::json!({ "type": "object", "properties": {} })
}

/// What a plugin may reach; everything is denied unless listed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Hosts its HTTP requests may go to (exact names, or `*.example.com`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Values it reads with Extism's config.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// A plugin's own limits; `None` takes the server's default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap.
    pub memory_mb: Option<u32>,
    /// Wall-clock limit of one call.
    pub timeout_ms: Option<u64>,
}

/// Why a manifest was refused: a message that names the offending key or value.
pub type ManifestError = String;

impl Manifest {
    /// Parses and validates `plugin.toml`.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| format!("plugin.toml: {}", e.message()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The manifest of a bare module uploaded with a name and a version.
    pub fn bare(name: &str, version: &str) -> Result<Manifest, ManifestError> {
        let manifest = Manifest {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            wasm: default_wasm(),
            hooks: Vec::new(),
            tools: Vec::new(),
            permissions: Permissions::default(),
            limits: Limits::default(),
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// The parsed version (valid once the manifest validated).
    pub fn semver(&self) -> semver::Version {
        semver::Version::parse(&self.version).unwrap_or(semver::Version::new(0, 0, 0))
    }

    /// Checks every rule serde cannot express.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !valid_key(&self.name, 64, false) {
            return Err(format!(
                "name \"{}\" must be 1 to 64 characters of a-z, 0-9, _ and -",
                self.name
            ));
        }
        if semver::Version::parse(&self.version).is_err() {
            return Err(format!(
                "version \"{}\" is not a semantic version (like 1.2.0)",
                self.version
            ));
        }
        if self.description.chars().count() > 1000 {
            return Err("description is longer than 1000 characters".into());
        }
        if self.wasm.is_empty() || !self.wasm.ends_with(".wasm") {
            return Err(format!("wasm \"{}\" must name a .wasm file", self.wasm));
        }
        let mut seen = std::collections::HashSet::new();
        for hook in &self.hooks {
            if !seen.insert(*hook) {
                return Err(format!("hooks: \"{}\" is listed twice", hook.function()));
            }
        }
        let mut names = std::collections::HashSet::new();
        for tool in &self.tools {
            if !valid_key(&tool.name, 64, true) {
                return Err(format!(
                    "tools: name \"{}\" must be 1 to 64 characters of letters, digits, _ and -",
                    tool.name
                ));
            }
            if !names.insert(tool.name.as_str()) {
                return Err(format!("tools: \"{}\" is declared twice", tool.name));
            }
            if tool.function.is_empty() || tool.function.len() > 128 {
                return Err(format!(
                    "tools.{}: function must be 1 to 128 characters",
                    tool.name
                ));
            }
            if tool.parameters.get("type").and_then(Value::as_str) != Some("object") {
                return Err(format!(
                    "tools.{}: parameters must be a JSON schema with type = \"object\"",
                    tool.name
                ));
            }
            super::schema::check_schema(&tool.parameters)
                .map_err(|e| format!("tools.{}: parameters: {e}", tool.name))?;
        }
        for host in &self.permissions.allowed_hosts {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            let ok = !bare.is_empty()
                && bare.len() <= 253
                && bare
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
            if !ok {
                return Err(format!(
                    "permissions.allowed_hosts: \"{host}\" must be a lowercase host name \
                     (or *.domain), without scheme, port or path"
                ));
            }
        }
        for (key, value) in &self.permissions.config {
            if key.is_empty() || key.len() > 128 || value.len() > 64 * 1024 {
                return Err(format!(
                    "permissions.config.{key}: keys are 1 to 128 bytes, values at most 64 KiB"
                ));
            }
        }
        if self.limits.memory_mb == Some(0) {
            return Err("limits.memory_mb must be at least 1".into());
        }
        if self.limits.timeout_ms == Some(0) {
            return Err("limits.timeout_ms must be at least 1".into());
        }
        Ok(())
    }

    /// Every export the manifest promises (tools and hooks).
    pub fn declared_exports(&self) -> Vec<String> {
        let mut out: Vec<String> = self.tools.iter().map(|t| t.function.clone()).collect();
        out.extend(self.hooks.iter().map(|h| h.function().to_string()));
        out.sort();
        out.dedup();
        out
    }
}

/// A plugin or tool key: ASCII letters (lowercase only unless `upper`), digits, `_`, `-`.
pub fn valid_key(s: &str, max: usize, upper: bool) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '_'
                || c == '-'
                || (upper && c.is_ascii_uppercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASKS: &str = r#"
name = "tasks"
version = "1.2.0"
description = "A to-do list"
wasm = "plugin.wasm"
hooks = ["message_before_send"]
[[tools]]
name = "add_task"
function = "add_task"
description = "Add a task to the list"
category = "productivity"
parameters = { type = "object", properties = { title = { type = "string" } }, required = ["title"] }
[permissions]
allowed_hosts = ["api.example.com"]
config = { greeting = "hello" }
[limits]
memory_mb = 32
timeout_ms = 2000
"#;

    #[test]
    fn the_documented_example_parses() {
        let m = Manifest::parse(TASKS).unwrap();
        assert_eq!(m.name, "tasks");
        assert_eq!(m.tools[0].parameters["required"][0], "title");
        assert_eq!(m.hooks, vec![Hook::MessageBeforeSend]);
        assert_eq!(m.limits.memory_mb, Some(32));
        assert_eq!(
            m.declared_exports(),
            vec!["add_task", "message_before_send"]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Manifest::parse(&TASKS.replace("memory_mb", "memory_megs")).unwrap_err();
        assert!(e.contains("memory_megs"), "{e}");
        let e = Manifest::parse(&TASKS.replace("allowed_hosts", "hosts")).unwrap_err();
        assert!(e.contains("hosts"), "{e}");
        let e = Manifest::parse(&TASKS.replace("1.2.0", "one")).unwrap_err();
        assert!(e.contains("semantic version"), "{e}");
        let e = Manifest::parse(&TASKS.replace("\"tasks\"", "\"Tasks!\"")).unwrap_err();
        assert!(e.contains("name"), "{e}");
        let e = Manifest::parse(&TASKS.replace("api.example.com", "http://x")).unwrap_err();
        assert!(e.contains("allowed_hosts"), "{e}");
        let e = Manifest::parse(&TASKS.replace("message_before_send", "on_boot")).unwrap_err();
        assert!(e.contains("on_boot"), "{e}");
    }
}
