//! The JSON-schema subset Hearth checks tool arguments against before a plugin sees them:
//! `type` (one or a list), `properties`, `required`, `additionalProperties`, `items`, `enum`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`. Other keywords
//! (`description`, `format`, …) are accepted and not enforced; the plugin still validates its
//! own input. Errors name the path of the offending value, so a model can correct its call.

use serde_json::Value;

/// Checks that a tool's `parameters` is a usable schema (the keywords Hearth enforces are
/// well-formed).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    check_at(schema, "")
}

fn check_at(schema: &Value, path: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err(format!("{} must be a schema object", show(path)));
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for n in names {
            match n.as_str() {
                Some("object" | "array" | "string" | "number" | "integer" | "boolean" | "null") => {
                }
                _ => return Err(format!("{}: unknown type {n}", show(path))),
            }
        }
    }
    if let Some(props) = obj.get("properties") {
        let Some(props) = props.as_object() else {
            return Err(format!("{}: properties must be an object", show(path)));
        };
        for (k, v) in props {
            check_at(v, &format!("{path}.{k}"))?;
        }
    }
    if let Some(req) = obj.get("required") {
        if !req
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err(format!("{}: required must be a list of names", show(path)));
        }
    }
    if let Some(items) = obj.get("items") {
        check_at(items, &format!("{path}[]"))?;
    }
    if let Some(extra) = obj.get("additionalProperties") {
        if !extra.is_boolean() {
            check_at(extra, &format!("{path}.*"))?;
        }
    }
    Ok(())
}

fn show(path: &str) -> String {
    if path.is_empty() {
        "the schema".into()
    } else {
        format!("`{}`", path.trim_start_matches('.'))
    }
}

/// Checks `value` against `schema`; the first violation, with its path.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(schema, value, "")
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

fn validate_at(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    let at = if path.is_empty() {
        "arguments".to_string()
    } else {
        format!("`{}`", &path[1..])
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&str> = match t {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        if !names.is_empty() && !names.iter().any(|n| type_matches(n, value)) {
            return Err(format!("{at} must be of type {}", names.join(" or ")));
        }
    }
    if let Some(options) = obj.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!(
                "{at} must be one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return Err(format!("{at} must be at least {min}"));
            }
        }
        if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return Err(format!("{at} must be at most {max}"));
            }
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
            if len < min {
                return Err(format!("{at} must have at least {min} characters"));
            }
        }
        if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                return Err(format!("{at} must have at most {max} characters"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
            if len < min {
                return Err(format!("{at} must have at least {min} items"));
            }
        }
        if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
            if len > max {
                return Err(format!("{at} must have at most {max} items"));
            }
        }
        if let Some(item_schema) = obj.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate_at(item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
    }
    if let Some(fields) = value.as_object() {
        if let Some(required) = obj.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    let field = if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{}.{name}", &path[1..])
                    };
                    return Err(format!("`{field}` is required"));
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        for (k, v) in fields {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate_at(s, v, &format!("{path}.{k}"))?,
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at} has an unknown field `{k}`"));
                    }
                    Some(s @ Value::Object(_)) => validate_at(s, v, &format!("{path}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_checked_with_paths() {
        let s = json!({"type": "object", "properties": {
            "title": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
            "n": {"type": "integer", "minimum": 1}
        }, "required": ["title"], "additionalProperties": false});
        check_schema(&s).unwrap();
        validate(&s, &json!({"title": "x", "tags": ["a"], "n": 2})).unwrap();
        assert_eq!(validate(&s, &json!({})).unwrap_err(), "`title` is required");
        assert!(validate(&s, &json!({"title": 3}))
            .unwrap_err()
            .contains("`title`"));
        assert!(validate(&s, &json!({"title": "x", "tags": [1]}))
            .unwrap_err()
            .contains("tags[0]"));
        assert!(validate(&s, &json!({"title": "x", "n": 1.5}))
            .unwrap_err()
            .contains("integer"));
        assert!(validate(&s, &json!({"title": "x", "zz": 1}))
            .unwrap_err()
            .contains("zz"));
        assert!(validate(&s, &json!("x")).unwrap_err().contains("object"));
        assert!(check_schema(&json!({"type": "thing"})).is_err());
    }
}
