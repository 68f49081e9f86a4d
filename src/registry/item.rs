//! Small helpers to build and read DynamoDB items (maps of `AttributeValue`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The primary key of an item (partition `pk`, sort `sk`): what GetItem and DeleteItem take,
/// and the start of every item written.
pub(crate) fn key(pk: &str, sk: &str) -> Item {
    let mut item = Item::new();
    item.insert(super::keys::PARTITION_KEY.into(), s(pk));
    item.insert(super::keys::SORT_KEY.into(), s(sk));
    item
}

/// A string attribute, if present and a string.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute parsed as `T`, if present and well-formed.
pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Inserts a string attribute when the value is present (DynamoDB refuses empty keys, and an
/// absent attribute reads better than an empty one).
pub(crate) fn put_opt_s(item: &mut Item, name: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        item.insert(name.to_string(), s(v));
    }
}

pub(crate) fn put_opt_n<T: ToString>(item: &mut Item, name: &str, value: Option<T>) {
    if let Some(v) = value {
        item.insert(name.to_string(), n(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_wrong_types() {
        let mut item = Item::new();
        item.insert("a".into(), s("x"));
        item.insert("b".into(), n(42));
        put_opt_s(&mut item, "c", Some(""));
        put_opt_n::<u64>(&mut item, "d", None);
        assert_eq!(get_s(&item, "a"), Some("x"));
        assert_eq!(get_n::<u64>(&item, "b"), Some(42));
        assert_eq!(get_n::<u64>(&item, "a"), None);
        assert_eq!(get_s(&item, "b"), None);
        assert!(!item.contains_key("c") && !item.contains_key("d"));
    }
}
