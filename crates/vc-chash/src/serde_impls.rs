//! `serde` support (feature `serde`): hashes as lowercase hex strings in human-readable formats
//! and as raw bytes otherwise; schemes by name.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::types::{ConsensusHash, Hash256, Scheme};

fn ser_bytes<S: Serializer>(s: S, bytes: &[u8]) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&crate::hex::encode(bytes))
    } else {
        s.serialize_bytes(bytes)
    }
}

struct HexOrBytes;

impl<'de> Visitor<'de> for HexOrBytes {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a hex string or bytes")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        crate::hex::decode(v).map_err(E::custom)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    if d.is_human_readable() {
        d.deserialize_str(HexOrBytes)
    } else {
        d.deserialize_bytes(HexOrBytes)
    }
}

impl Serialize for Hash256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_bytes(s, &self.0)
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = de_bytes(d)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Hash256)
            .map_err(|_| de::Error::invalid_length(bytes.len(), &"32 bytes"))
    }
}

impl Serialize for ConsensusHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_bytes(s, self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for ConsensusHash {
    /// 16 bytes are a legacy hash, 32 a v2 hash.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = de_bytes(d)?;
        let scheme = match bytes.len() {
            16 => Scheme::Legacy,
            32 => Scheme::V2,
            n => return Err(de::Error::invalid_length(n, &"16 or 32 bytes")),
        };
        ConsensusHash::from_slice(scheme, &bytes)
            .ok_or_else(|| de::Error::invalid_length(bytes.len(), &"16 or 32 bytes"))
    }
}

impl Serialize for Scheme {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Scheme::from_str(&name).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let ch = ConsensusHash::Legacy([0xab; 16]);
        let json = serde_json::to_string(&ch).unwrap();
        assert_eq!(json, alloc::format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(serde_json::from_str::<ConsensusHash>(&json).unwrap(), ch);
        let h = Hash256([1; 32]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hash256>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash256>("\"00\"").is_err());
        assert_eq!(serde_json::to_string(&Scheme::V2).unwrap(), "\"v2\"");
        assert_eq!(
            serde_json::from_str::<Scheme>("\"legacy\"").unwrap(),
            Scheme::Legacy
        );
    }
}
