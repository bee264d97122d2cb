//! The manifest a module states about itself (its `vc_manifest` export writes it), and the
//! application parameters that carry it with the module's hash into a database's metadata.

use bitcoin::ScriptBuf;
use vc_chash::Scheme;
use vc_codec::carrier::CarrierRule;
use vc_engine::AppSpec;

use crate::error::ManifestError;
use crate::guest::put_bytes;
use crate::limits::{MAX_FUEL_PER_BLOCK, MAX_FUEL_PER_OP, MAX_MEMORY_PAGES};

/// The manifest encoding's version (its first byte).
pub const MANIFEST_VERSION: u8 = 1;

/// The version of [`VmParams`]' encoding (its first byte).
pub const PARAMS_VERSION: u8 = 1;

/// The prefix of every module application's name in a database ([`AppSpec::name`]):
/// `wasm:` and the manifest's name.
pub const APP_NAME_PREFIX: &str = "wasm:";

/// The most marker scripts a manifest may declare.
pub const MAX_MARKERS: usize = 16;

/// The longest payload a manifest may accept.
pub const MAX_PAYLOAD_LIMIT: u32 = 100_000;

/// What a module states about itself: its identity, wire format, consensus parameters and
/// resource budget. Encoded as `docs/vm.md` section 3 says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Manifest {
    /// The application's name: 1 to 64 bytes of `a-z`, `0-9`, `-`, `_`, `.`.
    pub name: String,
    /// The rules' version: 1 to 32 printable ASCII bytes.
    pub version: String,
    /// The magic bytes (1 to 8).
    pub magic: Vec<u8>,
    /// The declared opcodes (at least one).
    pub opcodes: Vec<u8>,
    /// The first block read.
    pub first_block: u64,
    /// The consensus-hash scheme.
    pub scheme: Scheme,
    /// The staleness window.
    pub staleness: u64,
    /// The longest payload accepted.
    pub payload_limit: u32,
    /// The carrier rule.
    pub carrier: CarrierRule,
    /// The most linear memory the module may have, in 64 KiB pages (its declared minimum must
    /// fit, and `memory.grow` past it traps).
    pub memory_pages: u32,
    /// Fuel for one hook call.
    pub fuel_per_op: u64,
    /// Fuel for one block (prepare, the applies and finalize together).
    pub fuel_per_block: u64,
    /// Marker scripts.
    pub markers: Vec<ScriptBuf>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ManifestError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(ManifestError::Truncated { what, at: self.at })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ManifestError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ManifestError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(a))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ManifestError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], ManifestError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(ManifestError::Invalid {
                field: what,
                reason: format!("{len} bytes, at most {max}"),
            });
        }
        self.take(len, what)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Manifest {
    /// A manifest for `name` at `version`, with payloads starting with `magic`, read from
    /// `first_block`; no opcodes yet (set [`Manifest::opcodes`]), scheme v2, staleness 24,
    /// 80-byte payloads under the legacy carrier rule, 16 pages of memory (1 MiB), 10 million
    /// fuel per operation and a billion per block. The fields are public: change them.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        magic: impl AsRef<[u8]>,
        first_block: u64,
    ) -> Manifest {
        Manifest {
            name: name.into(),
            version: version.into(),
            magic: magic.as_ref().to_vec(),
            opcodes: Vec::new(),
            first_block,
            scheme: Scheme::V2,
            staleness: vc_engine::DEFAULT_STALENESS,
            payload_limit: 80,
            carrier: CarrierRule::Legacy,
            memory_pages: 16,
            fuel_per_op: 10_000_000,
            fuel_per_block: 1_000_000_000,
            markers: Vec::new(),
        }
    }

    /// Decodes and checks a manifest. Total: any bytes give a manifest or an error naming the
    /// field.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8("format version")?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnknownVersion(version));
        }
        let name = r.bytes("name", 64)?;
        if name.is_empty()
            || !name
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
        {
            return Err(invalid("name", "1 to 64 bytes of a-z, 0-9, '-', '_', '.'"));
        }
        let app_version = r.bytes("version", 32)?;
        if app_version.is_empty() || !app_version.iter().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("version", "1 to 32 printable ASCII bytes"));
        }
        let magic = r.bytes("magic", 8)?.to_vec();
        if magic.is_empty() {
            return Err(invalid("magic", "empty"));
        }
        let opcodes = r.bytes("opcodes", 256)?.to_vec();
        if opcodes.is_empty() {
            return Err(invalid("opcodes", "none declared"));
        }
        let first_block = r.u64("first block")?;
        let scheme_byte = r.u8("scheme")?;
        let scheme = Scheme::from_byte(scheme_byte)
            .ok_or_else(|| invalid("scheme", format!("unknown scheme byte {scheme_byte}")))?;
        let staleness = r.u64("staleness")?;
        let payload_limit = r.u32("payload limit")?;
        if payload_limit == 0 || payload_limit > MAX_PAYLOAD_LIMIT {
            return Err(invalid(
                "payload limit",
                format!("{payload_limit}, must be 1 to {MAX_PAYLOAD_LIMIT}"),
            ));
        }
        let carrier = match r.u8("carrier")? {
            0 => CarrierRule::Legacy,
            1 => CarrierRule::Strict,
            b => return Err(invalid("carrier", format!("unknown carrier byte {b}"))),
        };
        // What the engine refuses to run, refused here (a payload limit shorter than the
        // magic and opcode, ...).
        vc_codec::payload::PayloadFormat::new(&magic, &opcodes, payload_limit as usize)
            .map_err(|e| invalid("payload limit", e.to_string()))?;
        vc_codec::carrier::Carrier::new(carrier, payload_limit as usize)
            .map_err(|e| invalid("carrier", e.to_string()))?;
        let memory_pages = r.u32("memory pages")?;
        if memory_pages == 0 || memory_pages > MAX_MEMORY_PAGES {
            return Err(invalid(
                "memory pages",
                format!("{memory_pages}, must be 1 to {MAX_MEMORY_PAGES}"),
            ));
        }
        let fuel_per_op = r.u64("fuel per operation")?;
        if fuel_per_op == 0 || fuel_per_op > MAX_FUEL_PER_OP {
            return Err(invalid(
                "fuel per operation",
                format!("{fuel_per_op}, must be 1 to {MAX_FUEL_PER_OP}"),
            ));
        }
        let fuel_per_block = r.u64("fuel per block")?;
        if fuel_per_block < fuel_per_op || fuel_per_block > MAX_FUEL_PER_BLOCK {
            return Err(invalid(
                "fuel per block",
                format!("{fuel_per_block}, must be {fuel_per_op} to {MAX_FUEL_PER_BLOCK}"),
            ));
        }
        let count = r.u32("marker count")? as usize;
        if count > MAX_MARKERS {
            return Err(invalid(
                "markers",
                format!("{count}, at most {MAX_MARKERS}"),
            ));
        }
        let mut markers = Vec::with_capacity(count);
        for _ in 0..count {
            markers.push(ScriptBuf::from_bytes(r.bytes("marker", 10_000)?.to_vec()));
        }
        if r.at != bytes.len() {
            return Err(ManifestError::Trailing(bytes.len() - r.at));
        }
        Ok(Manifest {
            // Checked ASCII above.
            name: String::from_utf8_lossy(name).into_owned(),
            version: String::from_utf8_lossy(app_version).into_owned(),
            magic,
            opcodes,
            first_block,
            scheme,
            staleness,
            payload_limit,
            carrier,
            memory_pages,
            fuel_per_op,
            fuel_per_block,
            markers,
        })
    }

    /// The manifest's bytes ([`Manifest::decode`] reads them back).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MANIFEST_VERSION];
        put_bytes(&mut out, self.name.as_bytes());
        put_bytes(&mut out, self.version.as_bytes());
        put_bytes(&mut out, &self.magic);
        put_bytes(&mut out, &self.opcodes);
        out.extend_from_slice(&self.first_block.to_be_bytes());
        out.push(self.scheme.to_byte());
        out.extend_from_slice(&self.staleness.to_be_bytes());
        out.extend_from_slice(&self.payload_limit.to_be_bytes());
        out.push(match self.carrier {
            CarrierRule::Strict => 1,
            _ => 0,
        });
        out.extend_from_slice(&self.memory_pages.to_be_bytes());
        out.extend_from_slice(&self.fuel_per_op.to_be_bytes());
        out.extend_from_slice(&self.fuel_per_block.to_be_bytes());
        out.extend_from_slice(
            &u32::try_from(self.markers.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for m in &self.markers {
            put_bytes(&mut out, m.as_bytes());
        }
        out
    }
}

/// What a module application stores as its parameters ([`AppSpec::params`], kept in the
/// database's metadata and checked on every open): the module's SHA-256 and its manifest.
/// Another module, even one differing only in a custom section, has another hash and so makes
/// another database; and the manifest lets a tool rebuild the spec without the module.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VmParams {
    /// SHA-256 of the module's bytes.
    pub module_hash: [u8; 32],
    /// The module's manifest.
    pub manifest: Manifest,
}

impl VmParams {
    /// The parameters' bytes: [`PARAMS_VERSION`], the hash, the manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![PARAMS_VERSION];
        out.extend_from_slice(&self.module_hash);
        out.extend_from_slice(&self.manifest.encode());
        out
    }

    /// Reads parameters back.
    pub fn decode(bytes: &[u8]) -> Result<VmParams, ManifestError> {
        match bytes.split_first() {
            Some((&PARAMS_VERSION, rest)) if rest.len() >= 32 => {
                let (hash, manifest) = rest.split_at(32);
                let mut module_hash = [0; 32];
                module_hash.copy_from_slice(hash);
                Ok(VmParams {
                    module_hash,
                    manifest: Manifest::decode(manifest)?,
                })
            }
            Some((&PARAMS_VERSION, _)) => Err(ManifestError::Truncated {
                what: "module hash",
                at: 1,
            }),
            Some((&v, _)) => Err(ManifestError::UnknownVersion(v)),
            None => Err(ManifestError::Truncated {
                what: "parameters version",
                at: 0,
            }),
        }
    }

    /// The application's spec: name `wasm:<name>`, version `<version>+vm<ABI>`, the
    /// manifest's wire format and consensus parameters, and these parameters.
    pub fn spec(&self) -> AppSpec {
        let m = &self.manifest;
        let mut spec = AppSpec::new(
            format!("{APP_NAME_PREFIX}{}", m.name),
            format!("{}+vm{}", m.version, crate::abi::ABI_VERSION),
            &m.magic,
            m.first_block,
        )
        .with_opcodes(&m.opcodes)
        .with_scheme(m.scheme)
        .with_staleness(m.staleness)
        .with_payload_limit(m.payload_limit as usize)
        .with_carrier(m.carrier)
        .with_params(self.encode());
        for marker in &m.markers {
            spec = spec.with_marker(marker.clone());
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_manifest_the_engine_cannot_run_is_refused() {
        let mut m = Manifest::new("t", "1", b"12345678", 1);
        m.opcodes = b"a".to_vec();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        // The payload limit must hold the magic and the opcode.
        m.payload_limit = 8;
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::Invalid {
                field: "payload limit",
                ..
            })
        ));
    }
}
