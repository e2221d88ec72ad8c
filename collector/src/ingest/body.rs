//! A report's body as it travels: identity or gzip, the same two encodings
//! on the wire and in the store (`host_latest`, `raw_reports` keep a body as
//! received), so one decompressor serves both.

use std::io::Read;

pub use crate::store::reports::Encoding;

/// Decompresses a stored or received body, refusing more than `limit` bytes.
pub fn decompress(body: &[u8], encoding: Encoding, limit: usize) -> Result<Vec<u8>, DecompressError> {
    match encoding {
        Encoding::Identity => Ok(body.to_vec()),
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
            if out.len() > limit {
                Err(DecompressError::TooLarge(limit))
            } else {
                Ok(out)
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecompressError {
    #[error("body is not valid gzip: {0}")]
    Corrupt(String),
    #[error("report is larger than {0} bytes once decompressed")]
    TooLarge(usize),
}
