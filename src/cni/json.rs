//! Typed reads from a parsed JSON object, with errors (code 7) that name the
//! field. Used instead of serde derives: stdin is parsed once into a Value
//! and every field is taken from it, which keeps a second copy of each
//! parser (one per type and deserializer) out of the binary.

use super::error::{CniError, CniResult, INVALID_CONFIG};
use serde_json::{Map, Value};

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// Where this object sits, e.g. "prevResult.ips[1]"; empty at the top.
    path: String,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl<'a> Fields<'a> {
    pub fn of(value: &'a Value, path: &str) -> CniResult<Fields<'a>> {
        match value {
            Value::Object(object) => Ok(Fields {
                object,
                path: path.into(),
            }),
            other => Err(Self::error(
                path,
                &format!("must be an object, not {}", kind(other)),
            )),
        }
    }

    fn error(path: &str, problem: &str) -> CniError {
        let mut msg = String::from("invalid config: ");
        msg.push_str(if path.is_empty() { "the config" } else { path });
        msg.push(' ');
        msg.push_str(problem);
        CniError::new(INVALID_CONFIG, msg)
    }

    /// `path.key`, as messages name it.
    pub fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.into()
        } else {
            [self.path.as_str(), key].join(".")
        }
    }

    fn wrong(&self, key: &str, wanted: &str, value: &Value) -> CniError {
        Self::error(
            &self.name(key),
            &format!("must be {wanted}, not {}", kind(value)),
        )
    }

    /// The value unless absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    pub fn str(&self, key: &str) -> CniResult<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    pub fn required_str(&self, key: &str) -> CniResult<&'a str> {
        self.str(key)?
            .ok_or_else(|| Self::error(&self.name(key), "is missing"))
    }

    pub fn bool(&self, key: &str) -> CniResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.wrong(key, "true or false", other)),
        }
    }

    pub fn u32(&self, key: &str) -> CniResult<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| match value {
                    // Not "not a number": named by its value (1.5, -1).
                    Value::Number(number) => Self::error(
                        &self.name(key),
                        &format!(
                            "must be a whole number from 0 to {}, not {number}",
                            u32::MAX
                        ),
                    ),
                    other => self.wrong(key, "a whole number", other),
                }),
        }
    }

    pub fn list(&self, key: &str) -> CniResult<&'a [Value]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong(key, "a list", other)),
        }
    }

    /// Each element of the list `key` as an object, with its path.
    pub fn objects(&self, key: &str) -> CniResult<Vec<Fields<'a>>> {
        let name = self.name(key);
        let items = self.list(key)?;
        let mut objects = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            objects.push(Fields::of(item, &format!("{name}[{i}]"))?);
        }
        Ok(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_names_fields() {
        let value = json!({"a": "x", "n": 1400, "b": true, "l": [{"dst": "y"}], "z": null});
        let fields = Fields::of(&value, "").unwrap();
        assert_eq!(fields.str("a").unwrap(), Some("x"));
        assert_eq!(fields.u32("n").unwrap(), Some(1400));
        assert_eq!(fields.bool("b").unwrap(), Some(true));
        assert_eq!(fields.str("z").unwrap(), None);
        assert_eq!(
            fields.objects("l").unwrap()[0].required_str("dst").unwrap(),
            "y"
        );
        assert!(fields.list("missing").unwrap().is_empty());
    }

    #[test]
    fn errors_name_path_and_kind() {
        let value = json!({"n": "big", "l": [{"dst": 5}], "neg": -1});
        let fields = Fields::of(&value, "").unwrap();
        assert_eq!(
            fields.u32("n").unwrap_err().msg,
            "invalid config: n must be a whole number, not a string"
        );
        assert_eq!(
            fields.u32("neg").unwrap_err().msg,
            "invalid config: neg must be a whole number from 0 to 4294967295, not -1"
        );
        let route = &fields.objects("l").unwrap()[0];
        assert_eq!(
            route.required_str("dst").unwrap_err().msg,
            "invalid config: l[0].dst must be a string, not a number"
        );
        assert_eq!(
            fields.required_str("name").unwrap_err().msg,
            "invalid config: name is missing"
        );
        assert_eq!(
            Fields::of(&json!([1]), "").err().unwrap().msg,
            "invalid config: the config must be an object, not a list"
        );
        let value = json!({"mtu": 1400.5, "big": 4294967296u64});
        let fields = Fields::of(&value, "").unwrap();
        assert_eq!(
            fields.u32("mtu").unwrap_err().msg,
            "invalid config: mtu must be a whole number from 0 to 4294967295, not 1400.5"
        );
        assert_eq!(
            fields.u32("big").unwrap_err().msg,
            "invalid config: big must be a whole number from 0 to 4294967295, not 4294967296"
        );
    }
}
