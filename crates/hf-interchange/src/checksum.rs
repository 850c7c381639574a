//! The checksum of a safetensors file's tensor data. Every safetensors file hyperflux writes
//! (checkpoints, dense and sparse exports) stores it in its metadata under [`KEY`], and every
//! reader verifies it: a flipped byte in the tensor data that still parses is refused instead of
//! silently changing results. Files without the key (written by other tools) still load; the
//! reader reports that nothing could be verified.
//!
//! The digest is the SHA-256 of the tensors' raw data bytes (as stored: little-endian, C order),
//! concatenated in the byte order of the tensor names, written as 64 lower-case hex digits. It
//! does not depend on where the tensors lie in the file, so any tool can recompute it, e.g. in
//! Python: `h = sha256(); [h.update(f.get_tensor(k).tobytes()) for k in sorted(f.keys())]`.

use sha2::{Digest, Sha256};

/// Metadata key of the tensor-data checksum.
pub const KEY: &str = "tensor_sha256";

/// The hex SHA-256 of the tensors' data in name order.
pub fn tensor_digest<'a, I>(tensors: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    let mut all: Vec<(&str, &[u8])> = tensors.into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (_, data) in all {
        h.update(data);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// The stored checksum matches the data.
    Verified,
    /// The file has no checksum (another tool wrote it): nothing could be verified.
    Unverified,
    /// A format that has no place for the checksum (ONNX): it decoded whole and its values were
    /// checked, but there is no digest to verify.
    NotApplicable,
}

impl Integrity {
    /// The note a reader shows for an unverified file, naming it.
    pub fn note(self, file: &str) -> Option<String> {
        match self {
            Integrity::Verified | Integrity::NotApplicable => None,
            Integrity::Unverified => Some(format!(
                "{file} has no {KEY} checksum (not written by hyperflux?): its tensor data cannot be verified"
            )),
        }
    }
}

/// Compares a stored checksum (metadata value of [`KEY`], if any) with the digest of the data.
/// `Err` is a one-line description of the mismatch.
pub fn verify(
    stated: Option<&str>,
    computed: impl FnOnce() -> String,
) -> Result<Integrity, String> {
    let Some(stated) = stated else {
        return Ok(Integrity::Unverified);
    };
    let actual = computed();
    if stated.trim().eq_ignore_ascii_case(&actual) {
        Ok(Integrity::Verified)
    } else {
        Err(format!(
            "tensor data checksum mismatch ({KEY} {} but the data hashes to {}): the file was damaged or modified after it was written",
            short(stated),
            short(&actual)
        ))
    }
}

fn short(h: &str) -> String {
    let h: String = h.chars().take(12).collect();
    format!("{h}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_data_in_name_order() {
        // SHA-256("abc") with the parts given out of order.
        let d = tensor_digest([("b", &b"c"[..]), ("a", &b"ab"[..])]);
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(tensor_digest(std::iter::empty()).len(), 64);
    }

    #[test]
    fn verify_matches_mismatches_and_absent() {
        let d = tensor_digest([("x", &[1u8, 2, 3][..])]);
        assert_eq!(verify(Some(&d), || d.clone()), Ok(Integrity::Verified));
        assert_eq!(
            verify(Some(&d.to_uppercase()), || d.clone()),
            Ok(Integrity::Verified)
        );
        let other = tensor_digest([("x", &[1u8, 2, 4][..])]);
        let e = verify(Some(&d), || other.clone()).unwrap_err();
        assert!(e.contains("checksum mismatch") && !e.contains('\n'), "{e}");
        assert_eq!(verify(None, || unreachable!()), Ok(Integrity::Unverified));
        assert!(Integrity::Unverified
            .note("f")
            .unwrap()
            .contains("f has no"));
        assert_eq!(Integrity::Verified.note("f"), None);
    }
}
