//! Every key the configuration file accepts, read from the parser's own serde structs.
//!
//! [`accepted_keys`] walks [`sections::File`](super::sections::File) with a deserializer that
//! offers each struct every field it declares (serde passes the list to `deserialize_struct`)
//! and a placeholder value of the type asked for, recording the path of each field on the way.
//! So the list cannot drift from the parser: a key added to a section struct is in it, and the
//! manual page test (`rvsd.toml.5` documents each key) fails until the key is documented.

use super::sections::File;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::value::Error;
use serde::de::{self, Deserialize, DeserializeSeed, MapAccess, SeqAccess};
use serde::de::{Error as _, Visitor};
use std::cell::RefCell;

/// The fields of serde's private wrappers (`toml::Spanned`), which are no keys of the file.
const PRIVATE_PREFIX: &str = "$__";

/// Every key the parser accepts, as dotted paths from the file's top (`daemon.workers`,
/// `port.name`, `service.dest.addr`, `service.check.type`), each once, in the order of the
/// structs' declarations. The table a key belongs to is the path before its last dot.
///
/// # Errors
/// A field of a type the walk cannot offer a placeholder for (a map, an enum, an untyped
/// value): extend the walk rather than leave the key out.
pub fn accepted_keys() -> Result<Vec<String>, Error> {
    let found = RefCell::new(Vec::new());
    File::deserialize(Walker {
        path: String::new(),
        found: &found,
        quiet: false,
    })?;
    Ok(found.into_inner())
}

/// The deserializer at one path: records the path when a value (not a table) is read there.
struct Walker<'a> {
    path: String,
    found: &'a RefCell<Vec<String>>,
    /// A wrapper's own field (a span's start or end): read, but no key.
    quiet: bool,
}

impl Walker<'_> {
    fn leaf(&self) {
        if self.quiet {
            return;
        }
        let mut found = self.found.borrow_mut();
        if !found.contains(&self.path) {
            found.push(self.path.clone());
        }
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::custom(format!(
            "configuration key {}: the key walk has no placeholder for {what}",
            self.path
        ))
    }
}

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.unsupported("an untyped value"))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_bool(false)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_i64(0)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_i64(0)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_i64(0)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_i64(0)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_u64(0)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_u64(0)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_u64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_u64(0)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_f64(0.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_char('x')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_str("")
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.unsupported("bytes"))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.unsupported("bytes"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // One element, read at the sequence's own path: an array of values is one key, an
        // array of tables (`[[service]]`) is one table.
        visitor.visit_seq(One(Some(self)))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Error> {
        Err(self.unsupported("a tuple"))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Error> {
        Err(self.unsupported("a tuple"))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.unsupported("a map of free keys"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(Fields {
            fields: fields.iter(),
            walker: self,
            next: None,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Error> {
        Err(self.unsupported("an enum"))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.unsupported("an identifier"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// A sequence of one element.
struct One<'a>(Option<Walker<'a>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|w| seed.deserialize(w)).transpose()
    }
}

/// A struct's fields, each offered once, in declaration order.
struct Fields<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    walker: Walker<'a>,
    /// The field whose value comes next.
    next: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.next = Some(field);
        seed.deserialize(BorrowedStrDeserializer::<Error>::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = self.next.take().unwrap_or_default();
        let parent = &self.walker.path;
        // A span's value is the spanned table itself; its start and end are no keys.
        let private = field.starts_with(PRIVATE_PREFIX);
        let path = if private {
            parent.clone()
        } else if parent.is_empty() {
            field.to_owned()
        } else {
            format!("{parent}.{field}")
        };
        seed.deserialize(Walker {
            path,
            found: self.walker.found,
            quiet: private && !field.ends_with("value"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The configuration's manual page.
    const MANUAL: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/man/rvsd.toml.5"
    ));

    /// The keys `rvsd.toml.5` documents: each `.TP` entry whose tag starts with a bold word
    /// (`.B key` or `.BR key " (type, default)"`), under the `.SS "[table]"` or
    /// `.SS "[[table]]"` heading of its table, as `table.key`.
    fn documented(page: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut table: Option<String> = None;
        let mut lines = page.lines();
        while let Some(line) = lines.next() {
            if let Some(heading) = line.strip_prefix(".SS ") {
                let name = heading.trim().trim_matches('"');
                table = (name.starts_with('[') && name.ends_with(']'))
                    .then(|| name.trim_matches(|c| c == '[' || c == ']').to_owned());
            } else if line.starts_with(".SH ") {
                table = None;
            } else if line == ".TP" {
                let (Some(t), Some(tag)) = (&table, lines.next()) else {
                    continue;
                };
                let Some(args) = tag.strip_prefix(".BR ").or_else(|| tag.strip_prefix(".B "))
                else {
                    continue;
                };
                let key = args.split_whitespace().next().unwrap_or_default();
                keys.push(format!("{t}.{}", key.trim_matches('"')));
            }
        }
        keys
    }

    #[test]
    fn the_walk_finds_every_section_and_nested_table() {
        let keys = accepted_keys().expect("every field has a placeholder");
        for k in [
            "eal.args",
            "daemon.workers",
            "port.device",
            "interface.vlan",
            "route.via",
            "fullnat.lport_pools",
            "timeouts.syn_recv",
            "service.synproxy",
            "service.dest.mode",
            "service.check.type",
            "neighbour.mac",
            "sync.refresh",
            "ha.managed_addresses",
            "cluster.drain_timeout",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        // Tables are no keys of their own, and spans leave no trace.
        for t in ["daemon", "port", "service", "service.dest", "service.check"] {
            assert!(!keys.iter().any(|x| x == t), "{t} listed as a key");
        }
        assert!(keys.iter().all(|k| !k.contains("$__")), "{keys:?}");
        let unique: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "each key once");
    }

    #[test]
    fn a_field_the_walk_cannot_offer_is_an_error_not_a_gap() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct WithMap {
            name: String,
            extra: std::collections::HashMap<String, u32>,
        }
        let found = RefCell::new(Vec::new());
        let e = WithMap::deserialize(Walker {
            path: "t".into(),
            found: &found,
            quiet: false,
        })
        .err()
        .expect("a map has no placeholder");
        assert!(e.to_string().contains("t.extra"), "{e}");
    }

    #[test]
    fn every_accepted_key_is_in_the_manual_and_no_other() {
        let accepted: BTreeSet<String> = accepted_keys().unwrap().into_iter().collect();
        let listed = documented(MANUAL);
        let documented: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(documented.len(), listed.len(), "a key documented twice");
        let missing: Vec<&String> = accepted.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "keys the parser accepts but docs/man/rvsd.toml.5 does not document \
             (a .TP entry with .BR KEY under the .SS heading of its table): {missing:?}"
        );
        let stale: Vec<&String> = documented.difference(&accepted).collect();
        assert!(
            stale.is_empty(),
            "keys docs/man/rvsd.toml.5 documents but the parser refuses: {stale:?}"
        );
    }

    #[test]
    fn the_manual_reader_sees_tables_and_keys() {
        let page = ".SH X\n.TP\n.B ignored\n.SS \"[daemon]\"\n.TP\n.BR workers \" (integer)\"\n\
                    .SS \"[[service.dest]]\"\n.TP\n.B addr\n.SS Reloading\n.TP\n.B not_a_key\n";
        assert_eq!(documented(page), ["daemon.workers", "service.dest.addr"]);
    }
}
