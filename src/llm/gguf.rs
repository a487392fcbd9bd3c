//! Reads the metadata header of a GGUF file (name, architecture, version, context length)
//! without loading tensors, so discovery of a directory of models is cheap.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// The metadata discovery reports.
#[derive(Debug, Clone, Default)]
pub struct GgufInfo {
    /// `general.name`.
    pub name: Option<String>,
    /// `general.architecture` (llama, qwen2, …): the model family.
    pub architecture: Option<String>,
    /// `general.version`, else `general.size_label`.
    pub version: Option<String>,
    /// `{architecture}.context_length`.
    pub context_length: Option<u64>,
    /// `general.description`, else `general.basename`.
    pub description: Option<String>,
}

/// Caps that keep a corrupt or hostile header from exhausting memory.
const MAX_KV: u64 = 100_000;
const MAX_STRING: u64 = 1 << 20;
const MAX_ARRAY: u64 = 10_000_000;

#[derive(Debug)]
enum V {
    Str(String),
    Int(u64),
    Other,
}

fn read_n<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn read_string(r: &mut impl Read) -> std::io::Result<String> {
    let len = u64::from_le_bytes(read_n(r)?);
    if len > MAX_STRING {
        return Err(bad("string too long"));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn skip(r: &mut impl Read, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if copied != n {
        return Err(bad("truncated"));
    }
    Ok(())
}

fn read_value(r: &mut impl Read, ty: u32, depth: u8) -> std::io::Result<V> {
    let fixed = |ty: u32| match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    };
    Ok(match ty {
        4 => V::Int(u32::from_le_bytes(read_n(r)?) as u64),
        5 => V::Int(i32::from_le_bytes(read_n(r)?).max(0) as u64),
        10 => V::Int(u64::from_le_bytes(read_n(r)?)),
        11 => V::Int(i64::from_le_bytes(read_n(r)?).max(0) as u64),
        8 => V::Str(read_string(r)?),
        9 => {
            if depth > 2 {
                return Err(bad("nested arrays"));
            }
            let ety = u32::from_le_bytes(read_n(r)?);
            let n = u64::from_le_bytes(read_n(r)?);
            if n > MAX_ARRAY {
                return Err(bad("array too long"));
            }
            match fixed(ety) {
                Some(size) => skip(r, n * size)?,
                None => {
                    for _ in 0..n {
                        read_value(r, ety, depth + 1)?;
                    }
                }
            }
            V::Other
        }
        t => match fixed(t) {
            Some(size) => {
                skip(r, size)?;
                V::Other
            }
            None => return Err(bad("unknown value type")),
        },
    })
}

/// Reads the header; `None` for files that are not GGUF.
pub fn read_info(path: &Path) -> std::io::Result<Option<GgufInfo>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    if &read_n::<4>(&mut r)? != b"GGUF" {
        return Ok(None);
    }
    let version = u32::from_le_bytes(read_n(&mut r)?);
    if version < 2 {
        return Err(bad("GGUF v1 is not supported"));
    }
    let _tensors = u64::from_le_bytes(read_n(&mut r)?);
    let n_kv = u64::from_le_bytes(read_n(&mut r)?);
    if n_kv > MAX_KV {
        return Err(bad("too many metadata entries"));
    }
    let mut kv = HashMap::new();
    for _ in 0..n_kv {
        let key = read_string(&mut r)?;
        let ty = u32::from_le_bytes(read_n(&mut r)?);
        let v = read_value(&mut r, ty, 0)?;
        if !matches!(v, V::Other) {
            kv.insert(key, v);
        }
    }
    let s = |k: &str| match kv.get(k) {
        Some(V::Str(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let architecture = s("general.architecture");
    let context_length =
        architecture
            .as_ref()
            .and_then(|a| match kv.get(&format!("{a}.context_length")) {
                Some(V::Int(n)) => Some(*n),
                _ => None,
            });
    Ok(Some(GgufInfo {
        name: s("general.name"),
        version: s("general.version").or_else(|| s("general.size_label")),
        description: s("general.description").or_else(|| s("general.basename")),
        architecture,
        context_length,
    }))
}
