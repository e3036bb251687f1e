//! virt-fw-vars JSON (version 2, QEMU's `UefiVarStore`), through virtfw-varstore's own JSON types.
//!
//! virtfw-varstore's `json_import` panics on bad hex and silently drops a malformed timestamp, so this module
//! parses the document into its `JsonEfiVarStore` and checks every field before anything becomes an
//! [`EfiVar`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Serialize;
use virtfw_libefi::efivar::types::{EfiVar, EfiVarAttr, EfiVarId};
use virtfw_libefi::types::EfiTime;
use virtfw_varstore::json::{JsonEfiVarStore, JsonEfiVariable};
use zerocopy::FromBytes;

use crate::api::VarStoreFormat;
use crate::error::{Error, Result};
use crate::fd::check_attributes;

/// The only JSON version virt-fw-vars and QEMU write.
pub const JSON_VERSION: u32 = 2;

/// The virt-fw-vars JSON format as a [`VarStoreFormat`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtFwJson;

impl VarStoreFormat for VirtFwJson {
    fn read(&self, bytes: &[u8]) -> Result<Vec<EfiVar>> {
        parse(bytes)
    }

    fn write(&self, vars: &[EfiVar]) -> Result<Vec<u8>> {
        Ok(to_json(vars)?.into_bytes())
    }
}

/// Checks one JSON variable and converts it.
fn variable(json: &JsonEfiVariable) -> Result<EfiVar> {
    let field = |field, why| Error::JsonField { name: json.name.clone(), guid: json.guid, field, why };
    if json.name.is_empty() || json.name.contains('\0') {
        return Err(field("name", "a non-empty name without NUL"));
    }
    check_attributes(&json.name, json.guid, json.attr)?;
    let data = hex::decode(&*json.data).map_err(|_| field("data", "an even-length hex string"))?;
    let time = match &json.time {
        None => None,
        Some(hex_time) => {
            let raw = hex::decode(&**hex_time).map_err(|_| field("time", "an even-length hex string"))?;
            let time = EfiTime::read_from_bytes(&raw).map_err(|_| field("time", "16 bytes (an EFI_TIME)"))?;
            // All zero is how virtfw-varstore stores "no timestamp yet"; virt-fw-vars omits it.
            (raw.iter().any(|&b| b != 0)).then_some(time)
        }
    };
    Ok(EfiVar::new_with_vec_full(
        EfiVarId::new(json.name.clone(), json.guid),
        EfiVarAttr::from(json.attr),
        data,
        time,
    ))
}

/// Parses a virt-fw-vars JSON document into its variables, in document order.
pub fn parse(text: &[u8]) -> Result<Vec<EfiVar>> {
    let store: JsonEfiVarStore =
        serde_json::from_slice(text).map_err(|e| Error::JsonSyntax(e.to_string()))?;
    if store.version != JSON_VERSION {
        return Err(Error::JsonVersion(store.version));
    }
    let mut vars: Vec<EfiVar> = Vec::with_capacity(store.variables.len());
    for json in &store.variables {
        let var = variable(json)?;
        if vars.iter().any(|other| other.name() == var.name() && other.guid() == var.guid()) {
            return Err(Error::JsonField {
                name: json.name.clone(),
                guid: json.guid,
                field: "name",
                why: "unique (this name and GUID appear twice)",
            });
        }
        vars.push(var);
    }
    Ok(vars)
}

/// The JSON variable virt-fw-vars writes for `var`: no `time` when the timestamp is unset or all zero.
fn json_variable(var: &EfiVar) -> JsonEfiVariable {
    let mut json = JsonEfiVariable::from(var);
    if var.time().is_some_and(|t| zerocopy::IntoBytes::as_bytes(t).iter().all(|&b| b == 0)) {
        json.time = None;
    }
    json
}

/// `vars` as a virt-fw-vars JSON document (version 2, four-space indent as virt-fw-vars writes it).
pub fn to_json(vars: &[EfiVar]) -> Result<String> {
    let store =
        JsonEfiVarStore { version: JSON_VERSION, variables: vars.iter().map(json_variable).collect() };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    store.serialize(&mut serializer).map_err(|e| Error::JsonSyntax(e.to_string()))?;
    String::from_utf8(out).map_err(|e| Error::JsonSyntax(e.to_string()))
}
